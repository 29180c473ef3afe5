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
// I/O one small allocation larger, not three (what matters for memory
// with many idle connections); a connection served by an async procedure
// then allocates nothing per message in steady state (the Nim port of an
// echo server, written with these, makes no garbage at all).
//
// What must stay true: the reused future is reset only after Await has
// returned, when its callbacks have run and no wait list holds a live entry
// of it. An entry of the last use may still sit in a list that was
// detached when the use was cancelled; the reset moves the operation to a
// new generation, so that entry is stale and never runs (sock_op.go).

// coroOp is a coroutine's reusable operation: a receive (nameRecvInto),
// a send (nameSend) or a readiness wait (nameWaitReadable,
// nameWaitWritable), whichever it awaits now.
type coroOp struct {
	futureOp[int]
}

func (op *coroOp) ready(s *fdState) bool {
	var (
		n    int
		err  error
		done = true
	)
	switch op.name {
	case nameRecvInto:
		n, err, done = op.recvOnce(s)
	case nameSend:
		err, done = op.sendSome(s)
	}
	if !done {
		return false
	}
	if err != nil {
		op.fail(err)
	} else {
		op.complete(n)
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
func (co *Coro) use(name opName, fd AsyncFD, dir poller.Interest, skip int) *coroOp {
	op := co.op
	if op == nil || (op.fut.d != nil && op.fut.state == pending) {
		op = &coroOp{}
		co.op = op
	}
	// A new generation: an entry the last use left behind on a wait
	// list (cancelled while the list was detached) is stale.
	gen := op.gen + 1
	*op = coroOp{}
	op.opBase = opBase{fd: fd, gen: gen, dir: dir, name: name}
	op.fut.init(co.d, op, skip+1)
	// Seen from the start: nobody but the Await of the call ever sees this
	// future, and that Await returns every outcome to the procedure, so a
	// failure cannot go unread. Otherwise each failure would attach an
	// unseen-failure cleanup (future_unseen.go) to this one object, which
	// lives as long as the coroutine: memory growing with every failed
	// call although every error was read.
	op.fut.seen = true
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
	op := co.use(nameRecvInto, fd, poller.Read, 2)
	op.buf, op.flags = buf, flags
	n, err := Await(co, start(co.d, &op.fut, op))
	op.buf = nil
	return n, err
}

// Send writes all of data like Dispatcher.Send and awaits the result. It
// must be called from the async procedure running on co.
func (co *Coro) Send(fd AsyncFD, data []byte, flags SocketFlag) error {
	if err := co.running(); err != nil {
		return err
	}
	op := co.use(nameSend, fd, poller.Write, 2)
	op.buf, op.flags = data, flags
	_, err := Await(co, start(co.d, &op.fut, op))
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
	return co.waitReady(fd, poller.Read, nameWaitReadable)
}

// WaitWritable suspends the procedure on co until fd is writable.
func (co *Coro) WaitWritable(fd AsyncFD) error {
	return co.waitReady(fd, poller.Write, nameWaitWritable)
}

func (co *Coro) waitReady(fd AsyncFD, dir poller.Interest, name opName) error {
	if err := co.running(); err != nil {
		return err
	}
	if _, err := co.d.sockFD(fd); err != nil {
		return err
	}
	op := co.use(name, fd, dir, 3)
	// Readiness is only known from the poller: always wait for an event
	// (level-triggered, so data already there is reported at once).
	if err := co.d.queueOp(op); err != nil {
		return err
	}
	_, err := Await(co, &op.fut)
	return err
}
