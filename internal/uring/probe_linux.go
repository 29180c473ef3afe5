//go:build linux

package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Can io_uring be used here, and with what.
//
// Available answers once per process (memoised): it sets up a small
// ring, asks the kernel which opcodes it supports (IORING_REGISTER_PROBE,
// 5.6), registers and unregisters a one-entry provided buffer ring
// (5.19), and checks the features the completion backend relies on. Its
// error says why not, so that a dispatcher falls back to epoll and can
// tell the user: ENOSYS (no io_uring), EPERM (kernel.io_uring_disabled=2,
// or =1 for an unprivileged user outside kernel.io_uring_group, or a
// seccomp filter such as Docker's default profile), a missing opcode or
// feature.
//
// The environment variable ASYNCDISPATCH_IOURING simulates a kernel
// without io_uring: "enosys" or "eperm" makes every io_uring_setup of
// this package fail with that errno (New too), so that the fallback path
// can be tested on a kernel that has io_uring. It is read at each setup.

// ErrUnavailable is wrapped by every error of Available.
var ErrUnavailable = errors.New("uring: io_uring unavailable")

// EnvHook is the environment variable read by the setup hook.
const EnvHook = "ASYNCDISPATCH_IOURING"

func simulatedSetupErr() unix.Errno {
	switch os.Getenv(EnvHook) {
	case "enosys":
		return unix.ENOSYS
	case "eperm":
		return unix.EPERM
	}
	return 0
}

// requiredOps are the opcodes the completion backend issues.
var requiredOps = []struct {
	op   uint8
	name string
}{
	{OpNop, "NOP"},
	{OpPollAdd, "POLL_ADD"},
	{OpPollRemove, "POLL_REMOVE"},
	{OpSendmsg, "SENDMSG"},
	{OpRecvmsg, "RECVMSG"},
	{OpTimeout, "TIMEOUT"},
	{OpAccept, "ACCEPT"},
	{OpAsyncCancel, "ASYNC_CANCEL"},
	{OpConnect, "CONNECT"},
	{OpRead, "READ"},
	{OpWrite, "WRITE"},
	{OpSend, "SEND"},
	{OpRecv, "RECV"},
	// SEND_ZC is not used; it arrived in 6.0 with multishot RECV
	// (IORING_RECV_MULTISHOT), which the probe cannot see, being a flag.
	{OpSendZC, "SEND_ZC (stands for RECV multishot, 6.0)"},
}

// requiredFeatures: NODROP (5.5) so that no completion is lost to a full
// CQ, FAST_POLL (5.7) so that socket operations wait by poll instead of
// by a blocked worker thread each.
const requiredFeatures = FeatNoDrop | FeatFastPoll

// Probe is the set of opcodes the kernel supports.
type Probe struct {
	ops [probeOpsLength]bool
}

// Supports reports whether the kernel supports op.
func (p *Probe) Supports(op uint8) bool { return p.ops[op] }

// Probe asks the kernel which opcodes it supports.
func (r *Ring) Probe() (*Probe, error) { return probeFd(r.fd) }

func probeFd(fd int) (*Probe, error) {
	var raw probe
	if _, e := sysRegister(fd, registerProbe, unsafe.Pointer(&raw), probeOpsLength); e != 0 {
		return nil, errnoErr("io_uring_register", e)
	}
	p := new(Probe)
	for i := 0; i < int(raw.OpsLen) && i < probeOpsLength; i++ {
		if raw.Ops[i].Flags&ioUringOpSupported != 0 {
			p.ops[raw.Ops[i].Op] = true
		}
	}
	return p, nil
}

var availableOnce = sync.OnceValue(probeAvailable)

// Available reports whether this package can be used here: nil, or an
// error wrapping ErrUnavailable and the cause. It is computed once per
// process.
func Available() error { return availableOnce() }

func probeAvailable() error {
	var p params
	fd, e := sysSetup(2, &p)
	if e != 0 {
		err := errnoErr("io_uring_setup", e)
		switch e {
		case unix.ENOSYS:
			return fmt.Errorf("%w: the kernel has no io_uring: %w", ErrUnavailable, err)
		case unix.EPERM:
			return fmt.Errorf("%w: not permitted (%s, or a seccomp filter): %w", ErrUnavailable, disabledSysctl(), err)
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer unix.Close(fd)
	if missing := requiredFeatures &^ p.Features; missing != 0 {
		return fmt.Errorf("%w: kernel lacks io_uring features %#x (NODROP, FAST_POLL: Linux 5.7)", ErrUnavailable, missing)
	}
	pr, err := probeFd(fd)
	if err != nil {
		return fmt.Errorf("%w: probe: %w", ErrUnavailable, err)
	}
	var names []string
	for _, o := range requiredOps {
		if !pr.Supports(o.op) {
			names = append(names, o.name)
		}
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: kernel lacks io_uring opcodes %s", ErrUnavailable, strings.Join(names, ", "))
	}
	if err := probeBufRing(fd); err != nil {
		return fmt.Errorf("%w: provided buffer rings (Linux 5.19): %w", ErrUnavailable, err)
	}
	return nil
}

// probeBufRing registers and unregisters a one-entry buffer ring.
func probeBufRing(fd int) error {
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(mem)
	reg := bufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), RingEntries: 1}
	if _, e := sysRegister(fd, registerPbufRing, unsafe.Pointer(&reg), 1); e != 0 {
		return errnoErr("io_uring_register", e)
	}
	reg = bufReg{}
	_, e := sysRegister(fd, unregisterPbufRing, unsafe.Pointer(&reg), 1)
	return errnoErr("io_uring_register", e)
}

// disabledSysctl describes kernel.io_uring_disabled (6.6).
func disabledSysctl() string {
	b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	if err != nil {
		return "kernel.io_uring_disabled absent"
	}
	return "kernel.io_uring_disabled=" + strings.TrimSpace(string(b))
}
