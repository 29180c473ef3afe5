//go:build linux

package uring

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Ring is one io_uring instance: the SQ ring, the CQ ring and the SQE
// array, each mapped once at New and unmapped by Close, plus an eventfd
// that Wake writes (wake_linux.go).
//
// What must stay true:
//   - one goroutine owns the Ring (the event loop's): every method but
//     Wake is called from it only, and none concurrently with another;
//     with Options.SingleIssuer that goroutine is also locked to the OS
//     thread that called New (thread_linux.go says why);
//   - the SQ and CQ indices are free-running uint32 counters; a slot is
//     index & mask, and every difference of two indices is taken in
//     uint32 so that it stays right across the 2^32 wrap (index_linux.go's
//     helpers, fuzzed by index_linux_test.go);
//   - shared indices are read and written with sync/atomic only: the
//     kernel side is smp_load_acquire/smp_store_release, and Go's atomic
//     Load/Store are (at least) acquire/release, so SQE contents are
//     visible to the kernel before the tail that publishes them, and CQE
//     contents are read only after the tail that published them;
//   - inFlight counts the requests the kernel has consumed and not yet
//     finished: +1 per SQE consumed (the SQ head's advance), -1 per CQE
//     without IORING_CQE_F_MORE. Close uses it to wait until the kernel
//     no longer touches memory owned by the caller or by a BufRing.
type Ring struct {
	fd       int
	flags    uint32 // the setup flags the kernel accepted
	features uint32

	// Submission side. sqeTail is the next SQE GetSQE hands out;
	// sqeHead is the tail last published to the kernel.
	sqHead    *uint32 // written by the kernel
	sqTail    *uint32 // written by us (release)
	sqFlags   *uint32 // written by the kernel
	sqMask    uint32
	sqEntries uint32
	sqes      []SQE
	sqeTail   uint32
	sqeHead   uint32

	// Completion side. cqHeadLocal runs ahead of *cqHead while a batch
	// is being read; publishCQHead stores it.
	cqHead      *uint32 // written by us (release)
	cqTail      *uint32 // written by the kernel
	cqOverflow  *uint32 // written by the kernel
	cqMask      uint32
	cqEntries   uint32
	cqes        []CQE
	cqHeadLocal uint32

	ringMem []byte // SQ ring, and the CQ ring with IORING_FEAT_SINGLE_MMAP
	cqMem   []byte // CQ ring without IORING_FEAT_SINGLE_MMAP, else nil
	sqeMem  []byte

	inFlight int

	// Waker (wake_linux.go).
	wakefd    int
	woken     atomic.Uint32
	wakeArmed bool

	// Arguments of io_uring_enter that the kernel reads during the call,
	// kept in the Ring (a heap object) so that passing them costs no
	// allocation and no stack address reaches the kernel.
	extArg getEventsArg
	ts     Timespec
	// timeouts counts the internal TIMEOUT SQEs armed by SubmitAndWait
	// when the kernel lacks IORING_FEAT_EXT_ARG and not yet completed.
	timeouts int

	bufRings []*BufRing
	closed   bool

	enters uint64 // io_uring_enter calls, for tests
}

// Options configures New. The zero value is a good default.
type Options struct {
	// Entries is the SQ size (rounded up to a power of two by the
	// kernel, clamped to 32768). 0 means 256.
	Entries uint32
	// CQEntries is the CQ size (rounded up, clamped). 0 means
	// 4 × Entries: multishot requests post many completions per SQE.
	CQEntries uint32
	// SingleIssuer asks for IORING_SETUP_SINGLE_ISSUER and
	// IORING_SETUP_DEFER_TASKRUN (falling back to COOP_TASKRUN, then to
	// neither, on older kernels). The caller must have locked its
	// goroutine to its OS thread (runtime.LockOSThread) before New and
	// must make every call but Wake from that goroutine until Close:
	// the kernel ties such a ring to the thread that created it and
	// fails io_uring_enter from any other thread with EEXIST
	// (ErrWrongThread). See thread_linux.go.
	SingleIssuer bool

	// coopTaskrun adds IORING_SETUP_COOP_TASKRUN|TASKRUN_FLAG without
	// SingleIssuer (benchmarks only: see thread_linux.go for why it is
	// not the default).
	coopTaskrun bool
	// flags, when non-zero, replaces the computed setup flags (tests).
	flags uint32
	// twoMmaps maps the CQ ring on its own even when the kernel offers
	// IORING_FEAT_SINGLE_MMAP, as on kernels before 5.4 (tests).
	twoMmaps bool
}

// Errors of this package. Each wraps the errno it stands for, so
// errors.Is(err, unix.EBUSY) works as well as errors.Is(err, ErrBusy).
var (
	// ErrBusy: the kernel refused to take more submissions until
	// completions are reaped (EBUSY or EAGAIN from io_uring_enter: the
	// CQ and its overflow list are full, or it ran out of memory for
	// requests). The SQEs stay queued; reap completions and submit again.
	ErrBusy = errors.New("uring: completion queue full: reap completions and submit again")
	// ErrWrongThread: a SingleIssuer ring was entered from an OS thread
	// other than the one that created it (EEXIST).
	ErrWrongThread = errors.New("uring: ring used from a thread other than its single issuer")
	// ErrCQDropped: the kernel lost completions (EBADR): it could not
	// allocate an overflow entry for a completion the CQ had no room
	// for. The requests behind them will never report; the ring is
	// still usable.
	ErrCQDropped = errors.New("uring: completions were dropped by the kernel")
	// ErrClosed: the Ring was used after Close.
	ErrClosed = errors.New("uring: ring closed")
)

// Reserved user_data values: completions carrying them are the Ring's own
// (waker, internal timeouts, Close's cancel) and never reach the caller.
// Callers must give user_data below ReservedUserData.
const (
	ReservedUserData = ^uint64(0) - 15
	udWake           = ^uint64(0)
	udTimeout        = ^uint64(0) - 1
	udCloseCancel    = ^uint64(0) - 2
)

// New sets up a ring, maps it and arms its waker.
//
// The setup flags are tried newest first; when the kernel refuses a flag
// with EINVAL, New drops it and tries again (see setupFlags). EPERM
// (io_uring disabled by sysctl or seccomp), ENOSYS (no io_uring) and
// ENOMEM (locked-memory limit on kernels before 5.12) are returned as
// they are: Available says whether a ring can be had at all.
func New(o Options) (*Ring, error) {
	entries := o.Entries
	if entries == 0 {
		entries = defaultRingEntries
	}
	if entries > maxRingEntries {
		entries = maxRingEntries
	}
	cqEntries := o.CQEntries
	if cqEntries == 0 {
		cqEntries = 4 * entries
	}
	var p params
	fd := -1
	for _, flags := range setupFlags(o) {
		p = params{Flags: flags, CQEntries: cqEntries}
		var e unix.Errno
		fd, e = sysSetup(entries, &p)
		if e == 0 {
			break
		}
		if e != unix.EINVAL {
			return nil, errnoErr("io_uring_setup", e)
		}
	}
	if fd < 0 {
		return nil, errnoErr("io_uring_setup", unix.EINVAL)
	}
	if o.twoMmaps {
		p.Features &^= FeatSingleMmap
	}
	r := &Ring{fd: fd, flags: p.Flags, features: p.Features, wakefd: -1}
	if err := r.mmap(&p); err != nil {
		r.release()
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.release()
		return nil, os.NewSyscallError("eventfd", err)
	}
	r.wakefd = wfd
	r.armWake()
	if _, err := r.Submit(); err != nil {
		r.release()
		return nil, err
	}
	return r, nil
}

// setupFlags lists the flag sets New tries, each one dropping the next
// newest optional flag, so that a kernel refusing one flag still gets
// every older one:
//
//	IORING_SETUP_NO_SQARRAY      6.6   no SQ index array to fill
//	IORING_SETUP_DEFER_TASKRUN   6.1   completions run at enter only
//	  (→ COOP_TASKRUN)
//	IORING_SETUP_SINGLE_ISSUER   6.0
//	IORING_SETUP_COOP_TASKRUN    5.19  no IPI for task work
//	IORING_SETUP_TASKRUN_FLAG    5.19  …but IORING_SQ_TASKRUN says so
//	IORING_SETUP_SUBMIT_ALL      5.18  one bad SQE does not stop a batch
//	IORING_SETUP_CQSIZE|CLAMP    5.5   always
func setupFlags(o Options) []uint32 {
	if o.flags != 0 {
		return []uint32{o.flags}
	}
	base := SetupCQSize | SetupClamp
	f := base | SetupSubmitAll | SetupNoSQArray
	if o.SingleIssuer {
		f |= SetupSingleIssuer | SetupDeferTaskrun | SetupTaskrunFlag
	} else if o.coopTaskrun {
		f |= SetupCoopTaskrun | SetupTaskrunFlag
	}
	list := []uint32{f}
	drop := func(clear, set uint32) {
		if f&clear != 0 {
			f = f&^clear | set
			list = append(list, f)
		}
	}
	drop(SetupNoSQArray, 0)
	drop(SetupDeferTaskrun, SetupCoopTaskrun)
	drop(SetupSingleIssuer, 0)
	drop(SetupCoopTaskrun|SetupTaskrunFlag, 0)
	drop(SetupSubmitAll, 0)
	return list
}

// mmap maps the rings as the kernel's params describe them: with
// IORING_FEAT_SINGLE_MMAP (5.4) one mapping holds both rings and must be
// as large as the larger of the two; the SQE array is always its own.
// MAP_POPULATE saves the first submissions the page faults.
func (r *Ring) mmap(p *params) error {
	// The SQ mapping must hold the SQ's index words and, unless
	// IORING_SETUP_NO_SQARRAY (whose Array offset is 0), the index array.
	o := &p.SQOff
	sqSize := uintptr(max(o.Head, o.Tail, o.RingMask, o.RingEntries, o.Flags, o.Dropped)) + 4
	if p.Flags&SetupNoSQArray == 0 {
		sqSize = max(sqSize, uintptr(o.Array)+uintptr(p.SQEntries)*4)
	}
	cqSize := uintptr(p.CQOff.Cqes) + uintptr(p.CQEntries)*cqeSize
	single := p.Features&FeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if r.ringMem, err = unix.Mmap(r.fd, offSQRing, int(sqSize), prot, flags); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	cqMem := r.ringMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, int(cqSize), prot, flags); err != nil {
			return os.NewSyscallError("mmap", err)
		}
		cqMem = r.cqMem
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.SQEntries)*sqeSize, prot, flags); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead = u32(r.ringMem, p.SQOff.Head)
	r.sqTail = u32(r.ringMem, p.SQOff.Tail)
	r.sqFlags = u32(r.ringMem, p.SQOff.Flags)
	r.sqMask = *u32(r.ringMem, p.SQOff.RingMask)
	r.sqEntries = *u32(r.ringMem, p.SQOff.RingEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries)
	if r.flags&SetupNoSQArray == 0 {
		// SQE i always sits in SQ slot i: the index array is filled once.
		array := unsafe.Slice(u32(r.ringMem, p.SQOff.Array), r.sqEntries)
		for i := range array {
			array[i] = uint32(i)
		}
	}
	r.cqHead = u32(cqMem, p.CQOff.Head)
	r.cqTail = u32(cqMem, p.CQOff.Tail)
	r.cqOverflow = u32(cqMem, p.CQOff.Overflow)
	r.cqMask = *u32(cqMem, p.CQOff.RingMask)
	r.cqEntries = *u32(cqMem, p.CQOff.RingEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&cqMem[p.CQOff.Cqes])), r.cqEntries)
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqeHead = r.sqeTail
	r.cqHeadLocal = atomic.LoadUint32(r.cqHead)
	return nil
}

// Fd is the ring's file descriptor (close-on-exec: io_uring_setup always
// installs it with O_CLOEXEC).
func (r *Ring) Fd() int { return r.fd }

// SetupFlags are the IORING_SETUP_* flags the kernel accepted.
func (r *Ring) SetupFlags() uint32 { return r.flags }

// Features are the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries and CQEntries are the ring sizes the kernel chose.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries is the CQ ring's size.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// InFlight is the number of requests the kernel has taken and not yet
// finished (a multishot request counts until its last completion).
func (r *Ring) InFlight() int { return r.inFlight }
