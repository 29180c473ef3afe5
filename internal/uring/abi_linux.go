//go:build linux

package uring

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's io_uring ABI (include/uapi/linux/io_uring.h), spelled out
// here because golang.org/x/sys/unix carries only the system call numbers.
//
// What must stay true:
//   - every struct below has the kernel's size and field offsets on every
//     Linux architecture (abi_linux_test.go checks the sizes and the
//     offsets the kernel reads); none holds a Go pointer, so the garbage
//     collector never looks into ring memory and ring memory never keeps
//     a Go object alive;
//   - addresses written into an SQE are plain integers to the garbage
//     collector: whoever writes one keeps the object it points to
//     referenced until the completion (see prep_linux.go);
//   - the three system call wrappers are the only places that call the
//     kernel's io_uring entry points, so a test hook can stand in for
//     io_uring_setup (setup_linux.go) and every errno comes back as a
//     bare unix.Errno for the callers to classify.

// Opcodes (enum io_uring_op). Only the ones this package prepares or
// probes for are named.
const (
	OpNop         uint8 = 0
	OpPollAdd     uint8 = 6
	OpPollRemove  uint8 = 7
	OpSendmsg     uint8 = 9
	OpRecvmsg     uint8 = 10
	OpTimeout     uint8 = 11
	OpTimeoutRem  uint8 = 12
	OpAccept      uint8 = 13
	OpAsyncCancel uint8 = 14
	OpConnect     uint8 = 16
	OpRead        uint8 = 22
	OpWrite       uint8 = 23
	OpSend        uint8 = 26
	OpRecv        uint8 = 27
	OpProvideBufs uint8 = 31
	OpMsgRing     uint8 = 40
	OpSocket      uint8 = 45
	OpSendZC      uint8 = 47
	OpReadMulti   uint8 = 49

	probeOpsLength = 256 // the probe asks about every possible opcode
)

// SQE flags (sqe.Flags).
const (
	SQEFixedFile    uint8 = 1 << 0
	SQEIODrain      uint8 = 1 << 1
	SQEIOLink       uint8 = 1 << 2
	SQEIOHardlink   uint8 = 1 << 3
	SQEAsync        uint8 = 1 << 4
	SQEBufferSelect uint8 = 1 << 5
	// SQECQESkipSuccess is not supported by Ring: its in-flight count
	// expects one final completion per submission (see cq_linux.go).
	SQECQESkipSuccess uint8 = 1 << 6
)

// io_uring_setup flags.
const (
	SetupIOPoll         uint32 = 1 << 0
	SetupSQPoll         uint32 = 1 << 1
	SetupCQSize         uint32 = 1 << 3
	SetupClamp          uint32 = 1 << 4
	SetupRDisabled      uint32 = 1 << 6
	SetupSubmitAll      uint32 = 1 << 7
	SetupCoopTaskrun    uint32 = 1 << 8
	SetupTaskrunFlag    uint32 = 1 << 9
	SetupSQE128         uint32 = 1 << 10
	SetupCQE32          uint32 = 1 << 11
	SetupSingleIssuer   uint32 = 1 << 12
	SetupDeferTaskrun   uint32 = 1 << 13
	SetupNoMmap         uint32 = 1 << 14
	SetupRegisteredOnly uint32 = 1 << 15
	SetupNoSQArray      uint32 = 1 << 16
)

// io_uring_params.features bits.
const (
	FeatSingleMmap     uint32 = 1 << 0
	FeatNoDrop         uint32 = 1 << 1
	FeatSubmitStable   uint32 = 1 << 2
	FeatRWCurPos       uint32 = 1 << 3
	FeatCurPersonality uint32 = 1 << 4
	FeatFastPoll       uint32 = 1 << 5
	FeatPoll32Bits     uint32 = 1 << 6
	FeatSQPollNonfixed uint32 = 1 << 7
	FeatExtArg         uint32 = 1 << 8
	FeatNativeWorkers  uint32 = 1 << 9
	FeatRsrcTags       uint32 = 1 << 10
	FeatCQESkip        uint32 = 1 << 11
	FeatLinkedFile     uint32 = 1 << 12
	FeatRegRegRing     uint32 = 1 << 13
)

// Flags in the SQ ring's flags word (written by the kernel).
const (
	SQNeedWakeup uint32 = 1 << 0
	SQCQOverflow uint32 = 1 << 1
	SQTaskrun    uint32 = 1 << 2
)

// io_uring_enter flags.
const (
	EnterGetEvents uint32 = 1 << 0
	EnterSQWakeup  uint32 = 1 << 1
	EnterSQWait    uint32 = 1 << 2
	EnterExtArg    uint32 = 1 << 3
)

// CQE flags (cqe.Flags).
const (
	CQEFBuffer       uint32 = 1 << 0
	CQEFMore         uint32 = 1 << 1
	CQEFSockNonempty uint32 = 1 << 2
	CQEFNotif        uint32 = 1 << 3
	CQEBufferShift          = 16
)

// sqe.IoPrio bits for send/recv and accept.
const (
	RecvSendPollFirst uint16 = 1 << 0
	RecvMultishot     uint16 = 1 << 1
	AcceptMultishot   uint16 = 1 << 0
)

// POLL_ADD command flags (in sqe.Len).
const (
	PollAddMulti uint32 = 1 << 0
	PollAddLevel uint32 = 1 << 3
)

// ASYNC_CANCEL flags (sqe.OpFlags).
const (
	CancelAll      uint32 = 1 << 0
	CancelFd       uint32 = 1 << 1
	CancelAny      uint32 = 1 << 2
	CancelUserData uint32 = 1 << 4
)

// TIMEOUT flags (sqe.OpFlags).
const (
	TimeoutAbs      uint32 = 1 << 0
	TimeoutBoottime uint32 = 1 << 2
)

// io_uring_register opcodes.
const (
	registerEventfd      = 4
	unregisterEventfd    = 5
	registerProbe        = 8
	registerPbufRing     = 22
	unregisterPbufRing   = 23
	ioUringOpSupported   = 1 << 0
	offSQRing            = 0
	offCQRing            = 0x8000000
	offSQEs              = 0x10000000
	maxBufRingEntries    = 1 << 15
	bufRingEntrySize     = 16
	maxRingEntries       = 1 << 15
	defaultRingEntries   = 256
	sqeSize              = 64
	cqeSize              = 16
	sizeofGetEventsArg   = 24
	sizeofParams         = 120
	sizeofProbeHeader    = 16
	sizeofProbeOp        = 8
	sizeofBufReg         = 40
	sizeofKernelTimespec = 16
)

// SQE is one submission queue entry (struct io_uring_sqe, 64 bytes). The
// field names are the kernel's; fields that are unions in C carry the
// name of their most common member, and the prep helpers document which
// member they set. An SQE handed out by Ring.GetSQE is zeroed.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IoPrio      uint16
	Fd          int32
	Off         uint64 // off, addr2
	Addr        uint64 // addr, splice_off_in
	Len         uint32
	OpFlags     uint32 // rw_flags, msg_flags, poll32_events, timeout_flags, accept_flags, cancel_flags…
	UserData    uint64
	BufIndex    uint16 // buf_index, buf_group
	Personality uint16
	FileIndex   uint32 // splice_fd_in, file_index, addr_len
	Addr3       uint64
	_           uint64
}

// CQE is one completion queue entry (struct io_uring_cqe, 16 bytes), as
// copied out of the ring: reading it never touches ring memory.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// More reports IORING_CQE_F_MORE: the request that posted c stays armed
// and will post more completions (multishot). A multishot completion
// without it is the request's last.
func (c CQE) More() bool { return c.Flags&CQEFMore != 0 }

// Buffer returns the provided buffer the kernel picked for c (the upper
// 16 bits of Flags) and whether it picked one (IORING_CQE_F_BUFFER).
func (c CQE) Buffer() (id uint16, ok bool) {
	return uint16(c.Flags >> CQEBufferShift), c.Flags&CQEFBuffer != 0
}

// SockNonempty reports IORING_CQE_F_SOCK_NONEMPTY: after this receive,
// the socket still had data queued.
func (c CQE) SockNonempty() bool { return c.Flags&CQEFSockNonempty != 0 }

// Err is nil for a non-negative Res and the errno -Res otherwise.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// Timespec is struct __kernel_timespec: 64-bit seconds and nanoseconds
// on every architecture (unix.Timespec is 32-bit on 386 and arm).
type Timespec struct {
	Sec  int64
	Nsec int64
}

type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        sqringOffsets
	CQOff        cqringOffsets
}

// getEventsArg is struct io_uring_getevents_arg, the IORING_ENTER_EXT_ARG
// argument: the signal mask (none here) and a pointer to a Timespec.
type getEventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32
	Ts          uint64
}

type probeOp struct {
	Op    uint8
	Resv  uint8
	Flags uint16
	Resv2 uint32
}

type probe struct {
	LastOp uint8
	OpsLen uint8
	Resv   uint16
	Resv2  [3]uint32
	Ops    [probeOpsLength]probeOp
}

// bufReg is struct io_uring_buf_reg, IORING_(UN)REGISTER_PBUF_RING's
// argument.
type bufReg struct {
	RingAddr    uint64
	RingEntries uint32
	Bgid        uint16
	Flags       uint16
	MinLeft     uint32
	Resv        [5]uint32
}

// bufEntry is struct io_uring_buf, one slot of a provided buffer ring.
// The ring's tail is the Resv field of slot 0 (the C header overlays a
// struct on the first slot).
type bufEntry struct {
	Addr uint64
	Len  uint32
	Bid  uint16
	Resv uint16
}

// sysSetup, sysEnter and sysRegister are the three io_uring system calls.
// They return the raw errno (0 on success) so that callers can switch on
// it without an allocation.

func sysSetup(entries uint32, p *params) (int, unix.Errno) {
	if e := simulatedSetupErr(); e != 0 {
		return -1, e
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	return int(fd), errno
}

func sysEnter(fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit),
		uintptr(minComplete), uintptr(flags), uintptr(arg), argSize)
	return int(n), errno
}

func sysRegister(fd int, op uint32, arg unsafe.Pointer, nrArgs uint32) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op),
		uintptr(arg), uintptr(nrArgs), 0, 0)
	return int(n), errno
}

// errnoErr turns a non-zero errno into an *os.SyscallError named after
// the call, and 0 into nil.
func errnoErr(call string, e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return os.NewSyscallError(call, e)
}
