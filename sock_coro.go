package asyncdispatch

import "github.com/asyncdispatch/asyncdispatch/internal/poller"

// Awaited socket I/O without a future per call.
//
// co.RecvInto(fd, buf, flags) is Await(co, d.RecvInto(fd, buf, flags)) and
// co.Send(fd, data, flags) is Await(co, d.Send(fd, data, flags)), with the
// same semantics, ordering and errors — but the operation object is the
// coroutine's own and is reused from call to call, and so are
// co.WaitReadable and co.WaitWritable. A coroutine waits for one thing at a
// time, and nobody else ever sees that future, so one object (coroOp)
// serves all four kinds of operation, which keeps a coroutine that has done
// I/O one small allocation larger, not three (idle connections: issue 5's
// memory target); a connection served by an async procedure then allocates
// nothing per message in steady state (the Nim port of an echo server,
// written with these, makes no garbage at all).
//
// What must stay true: the reused future is reset only after Await has
// returned, when its callbacks have run and no wait list holds it.

// coroOp is a coroutine's reusable operation: a receive, a send, or a
// readiness wait, whichever it awaits now.
type coroOp struct {
	fut Future[int]
	fd  AsyncFD
	// buf is the receive buffer, or what is left to send.
	buf   []byte
	flags SocketFlag
	kind  coroOpKind
	dir   poller.Interest
	wrote bool // a send: part of buf went out already
}

type coroOpKind uint8

const (
	opRecv coroOpKind = iota
	opSend
	opWait
)

func (op *coroOp) procName() string {
	switch {
	case op.kind == opRecv:
		return "RecvInto"
	case op.kind == opSend:
		return "Send"
	case op.dir == poller.Read:
		return "WaitReadable"
	}
	return "WaitWritable"
}

func (op *coroOp) cancel() bool {
	op.fut.d.removeOp(op.fd, op.dir, op)
	op.buf = nil
	return true
}

func (op *coroOp) abort(err error) {
	op.fut.tryFail(err)
	op.buf = nil
}

func (op *coroOp) ready(s *fdState) bool {
	if op.fut.state != pending {
		// Cancelled while its wait list was being run: do nothing.
		return true
	}
	var (
		n    int
		err  error
		done = true
	)
	switch op.kind {
	case opRecv:
		n, err, done = recvOnce(s, op.buf, op.flags)
	case opSend:
		err, done = sendSome(s, &op.buf, &op.wrote, op.flags)
	}
	if !done {
		return false
	}
	op.buf = nil
	if err != nil {
		op.fut.tryFail(err)
	} else {
		op.fut.tryComplete(n)
	}
	return true
}

// running refuses a Coro that is not the running one before anything is
// started: a receive started for a procedure that cannot wait for it would
// take the peer's data into a buffer nobody reads.
func (co *Coro) running() error {
	if co == nil {
		return ErrNotAsync
	}
	if co.d.current != co && !co.stopped {
		return errNotRunning
	}
	return nil
}

// use readies the coroutine's operation for a new call (skip: frames
// between the user's call and use, for FuturesInProgress). An operation
// still pending — only possible if Await returned without waiting for it,
// in a coroutine that Close is unwinding — is left where it is (Close
// aborts it) and replaced.
func (co *Coro) use(kind coroOpKind, fd AsyncFD, dir poller.Interest, skip int) *coroOp {
	op := co.op
	if op == nil || (op.fut.d != nil && op.fut.state == pending) {
		op = &coroOp{}
		co.op = op
	}
	*op = coroOp{fd: fd, kind: kind, dir: dir}
	op.fut.init(co.d, op, skip+1)
	return op
}

// RecvInto receives into buf like Dispatcher.RecvInto and awaits the
// result. It must be called from the async procedure running on co.
func (co *Coro) RecvInto(fd AsyncFD, buf []byte, flags SocketFlag) (int, error) {
	if buf == nil {
		return 0, ErrNilBuffer
	}
	if err := co.running(); err != nil {
		return 0, err
	}
	op := co.use(opRecv, fd, poller.Read, 2)
	op.buf, op.flags = buf, flags
	n, err := Await(co, start(co.d, &op.fut, op, fd, poller.Read))
	op.buf = nil
	return n, err
}

// Send writes all of data like Dispatcher.Send and awaits the result. It
// must be called from the async procedure running on co.
func (co *Coro) Send(fd AsyncFD, data []byte, flags SocketFlag) error {
	if err := co.running(); err != nil {
		return err
	}
	op := co.use(opSend, fd, poller.Write, 2)
	op.buf, op.flags = data, flags
	_, err := Await(co, start(co.d, &op.fut, op, fd, poller.Write))
	op.buf = nil
	return err
}

// WaitReadable suspends the procedure on co until fd is readable (or at
// end of file or in error), reading nothing. A server with many idle
// connections can wait with it and take a read buffer only once data is
// there, so an idle connection holds no buffer at all. Like the other
// operations it queues behind pending receives on fd, is cancellable,
// and fails with ErrClosedSocket if fd is closed meanwhile.
func (co *Coro) WaitReadable(fd AsyncFD) error {
	return co.waitReady(fd, poller.Read)
}

// WaitWritable suspends the procedure on co until fd is writable.
func (co *Coro) WaitWritable(fd AsyncFD) error {
	return co.waitReady(fd, poller.Write)
}

func (co *Coro) waitReady(fd AsyncFD, dir poller.Interest) error {
	if err := co.running(); err != nil {
		return err
	}
	if _, err := co.d.sockFD(fd); err != nil {
		return err
	}
	op := co.use(opWait, fd, dir, 3)
	// Readiness is only known from the poller: always wait for an event
	// (level-triggered, so data already there is reported at once).
	if err := co.d.addWaiter(fd, dir, waiter{op: op}); err != nil {
		return err
	}
	_, err := Await(co, &op.fut)
	return err
}
