package asyncdispatch

import "github.com/asyncdispatch/asyncdispatch/internal/poller"

// Awaited socket I/O without a future per call.
//
// co.RecvInto(fd, buf, flags) is Await(co, d.RecvInto(fd, buf, flags)) and
// co.Send(fd, data, flags) is Await(co, d.Send(fd, data, flags)), with the
// same semantics, ordering and errors — but the operation object is the
// coroutine's own and is reused from call to call. A coroutine waits for
// one thing at a time, and nobody else ever sees that future, so reusing
// it is safe; a connection served by an async procedure then allocates
// nothing per message in steady state (the Nim port of an echo server,
// written with these, makes no garbage at all).
//
// What must stay true: the reused future is reset only after Await has
// returned, when its callbacks have run and no wait list holds it.

// RecvInto receives into buf like Dispatcher.RecvInto and awaits the
// result. It must be called from the async procedure running on co.
func (co *Coro) RecvInto(fd AsyncFD, buf []byte, flags SocketFlag) (int, error) {
	if buf == nil {
		return 0, ErrNilBuffer
	}
	op := co.rop
	if op == nil {
		op = &recvOp[int]{result: countResult}
		co.rop = op
	}
	op.fut = Future[int]{d: co.d, name: "RecvInto", src: op}
	op.fd, op.buf, op.flags = fd, buf, flags
	if co.d.tracking {
		co.d.track(&op.fut, 2)
	}
	f := start(co.d, &op.fut, op, fd, poller.Read)
	n, err := Await(co, f)
	op.buf = nil
	return n, err
}

// Send writes all of data like Dispatcher.Send and awaits the result. It
// must be called from the async procedure running on co.
func (co *Coro) Send(fd AsyncFD, data []byte, flags SocketFlag) error {
	op := co.sop
	if op == nil {
		op = &sendOp{}
		co.sop = op
	}
	op.fut = Future[Void]{d: co.d, name: "Send", src: op}
	op.fd, op.data, op.flags, op.wrote = fd, data, flags, false
	if co.d.tracking {
		co.d.track(&op.fut, 2)
	}
	f := start(co.d, &op.fut, op, fd, poller.Write)
	_, err := Await(co, f)
	op.data = nil
	return err
}

// waitOp is a pending readiness wait: it finishes as soon as its direction
// is ready and reads or writes nothing.
type waitOp struct {
	fut Future[Void]
	fd  AsyncFD
	dir poller.Interest
}

func (op *waitOp) procName() string { return op.fut.name }

func (op *waitOp) cancel() bool {
	op.fut.d.removeOp(op.fd, op.dir, op)
	return true
}

func (op *waitOp) abort(err error) { op.fut.tryFail(err) }

func (op *waitOp) ready(AsyncFD) bool {
	op.fut.tryComplete(Void{})
	return true
}

// WaitReadable suspends the procedure on co until fd is readable (or at
// end of file or in error), reading nothing. A server with many idle
// connections can wait with it and take a read buffer only once data is
// there, so an idle connection holds no buffer at all. Like the other
// operations it queues behind pending receives on fd, is cancellable,
// and fails with ErrClosedSocket if fd is closed meanwhile.
func (co *Coro) WaitReadable(fd AsyncFD) error {
	return co.waitReady(fd, poller.Read, "WaitReadable")
}

// WaitWritable suspends the procedure on co until fd is writable.
func (co *Coro) WaitWritable(fd AsyncFD) error {
	return co.waitReady(fd, poller.Write, "WaitWritable")
}

func (co *Coro) waitReady(fd AsyncFD, dir poller.Interest, name string) error {
	op := co.wop
	if op == nil {
		op = &waitOp{}
		co.wop = op
	}
	op.fut = Future[Void]{d: co.d, name: name, src: op}
	op.fd, op.dir = fd, dir
	if _, err := co.d.sockFD(fd); err != nil {
		return err
	}
	// Readiness is only known from the poller: always wait for an event
	// (level-triggered, so data already there is reported at once).
	if err := co.d.addWaiter(fd, dir, waiter{op: op}); err != nil {
		return err
	}
	_, err := Await(co, &op.fut)
	return err
}
