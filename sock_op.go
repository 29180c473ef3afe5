package asyncdispatch

import "github.com/asyncdispatch/asyncdispatch/internal/poller"

// Pending operations on a descriptor.
//
// Every operation the package queues on a descriptor's wait list — a
// receive, a send, an accept, a connect, a coroutine's reusable operation,
// one attempt of a Dial — embeds opBase, the part that does not depend on
// the operation's result: the descriptor and direction it waits on, its
// name, its buffer, and its place in the wait list. futureOp[T] adds the
// future the operation completes, in the same allocation, and implements
// the source side (procName, cancel) and abort once for all of them. An
// operation type writes ready (one attempt at its system call on a ready
// descriptor) and only what it holds beyond that.
//
// What must stay true:
//   - an operation is on at most one wait list, its own descriptor's in
//     its own direction, and leaves it through runList (ready reported
//     true), through unregister (abort) or through dequeue (cancellation);
//   - a cancelled operation never does I/O and is never aborted, whatever
//     the order of callbacks and cancellations. Its entry cannot always
//     be removed: runList detaches a list while it runs it, and a callback
//     ahead of the operation may cancel it and stay on the list. So each
//     entry carries the operation's generation (gen) from when it was
//     queued, dequeue and reuse (the coroutine's operation, Coro.use)
//     advance gen, and the wait-list code never calls ready or abort
//     through an entry whose generation is not the operation's
//     (waiter.stale). Otherwise the entry would run on the descriptor's
//     next readiness, with the reused operation's buffer and future —
//     receiving from, or sending to, the wrong socket;
//   - buf belongs to the operation from its start until it is finished or
//     cancelled; then it is released (set to nil), so the caller may use
//     its buffer again and nothing the package holds pins it.
//
// A completion backend (io_uring: submit, then complete) would hang off the
// same base: ready becomes the preparation of a submission from fd, dir,
// flags and buf, a complete(result) method finishes the operation, the
// submission's user data carries gen as an entry does (a completion for a
// cancelled or reused operation is then recognised as stale), and a
// cancellation submits a cancel and keeps buf until the kernel's
// completion for it has arrived, instead of releasing it at once.
type opBase struct {
	// buf is the receive buffer, or what is left to send.
	buf []byte
	fd  AsyncFD
	// gen is the operation's generation: see "What must stay true".
	// A stale entry lives no longer than the runList that detached its
	// list, so gen wrapping around is harmless.
	gen uint32
	dir poller.Interest
	// name is the operation's name (procName), as a small number: the
	// coroutine's reusable operation, kept for the coroutine's life, stays
	// 120 bytes.
	name  opName
	flags SocketFlag
	// wrote: a send wrote part of buf already (sendSome).
	wrote bool
}

// opName names an operation for traces and FuturesInProgress.
type opName uint8

const (
	nameRecv opName = iota
	nameRecvString
	nameRecvInto
	nameSend
	nameSendString
	nameRecvFromInto
	nameSendTo
	nameSendToUnix
	nameAccept
	nameAcceptAddr
	nameConnect
	nameWaitReadable
	nameWaitWritable
	nameDialAttempt
)

var opNames = [...]string{
	nameRecv:         "Recv",
	nameRecvString:   "RecvString",
	nameRecvInto:     "RecvInto",
	nameSend:         "Send",
	nameSendString:   "SendString",
	nameRecvFromInto: "RecvFromInto",
	nameSendTo:       "SendTo",
	nameSendToUnix:   "SendToUnix",
	nameAccept:       "Accept",
	nameAcceptAddr:   "AcceptAddr",
	nameConnect:      "Connect",
	nameWaitReadable: "WaitReadable",
	nameWaitWritable: "WaitWritable",
	nameDialAttempt:  "Dial",
}

func (b *opBase) base() *opBase    { return b }
func (b *opBase) procName() string { return opNames[b.name] }

// queuedOp is an operation that can wait on a wait list.
type queuedOp interface {
	ioOp
	base() *opBase
}

// futureOp is an operation that finishes a Future[T]: the two in one
// allocation.
type futureOp[T any] struct {
	fut Future[T]
	opBase
}

// cancel takes the operation off its wait list and releases its buffer
// (Future.Cancel then fails the future).
func (o *futureOp[T]) cancel() bool {
	o.fut.d.dequeue(&o.opBase)
	o.buf = nil
	return true
}

// abort fails the operation without touching the descriptor: it has been
// unregistered, or is being closed.
func (o *futureOp[T]) abort(err error) { o.fail(err) }

func (o *futureOp[T]) complete(v T) {
	o.buf = nil
	o.fut.tryComplete(v)
}

func (o *futureOp[T]) fail(err error) {
	o.buf = nil
	o.fut.tryFail(err)
}

// start finishes setting up an operation and either completes it at once
// (try first) or queues it on its descriptor. f is the operation's future;
// its source must be set already.
func start[T any](d *Dispatcher, f *Future[T], op queuedOp) *Future[T] {
	d.stats.ops++
	b := op.base()
	s, err := d.sockFD(b.fd)
	if err != nil {
		f.tryFail(err)
		return f
	}
	if canTry(s, b.dir) && op.ready(s) {
		d.charge()
		return f
	}
	if err := d.queueOp(op); err != nil {
		f.tryFail(err)
	}
	return f
}
