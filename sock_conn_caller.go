package asyncdispatch

import (
	"fmt"
	"net"
)

// Who calls a method of the net.Conn view (Conn, Listener)?
//
// Read, Write and Accept block their caller until there is something to
// return. How depends on who the caller is:
//
//   - the async procedure running on the view's dispatcher: it is
//     suspended (a coroutine switch) while the loop serves everyone else;
//     this is the fast path, and it allocates nothing;
//   - the goroutine running a loop, outside an async procedure (a future
//     callback, an fd or timer callback), or an async procedure of another
//     dispatcher, or any other coroutine (iter.Pull): it gets an error
//     matching ErrNotAsync at once. Blocking there would deadlock the
//     view's own loop, which would wait for itself, or stall another one;
//   - any other goroutine: it goes through the door. The operation is
//     started on the loop (CallSoonThreadSafe) by an async procedure of
//     its own, and the goroutine waits on a channel for its result, with
//     the same semantics — deadlines, Close, errors — as the fast path. A
//     goroutine may use the view this way while another goroutine runs
//     the loop; calling it on the goroutine that drives the loop, between
//     two runs, waits forever for a loop nobody runs (as Future.Wait does).
//
// Close and the deadline setters never block: from the procedure they act
// at once; from anywhere else they are queued to the loop (in order with
// the door's operations of the same goroutine) and return.
//
// How the caller is told. A procedure runs on a goroutine of its own (its
// coroutine). sockState.runG holds the goroutine of the procedure running
// on the loop now, set around every switch; it holds exactly on that
// goroutine: runG == curG() means "I am the running procedure", and only
// then is d.current read (the loop's own field, safe on the loop). Any
// other caller looks at its own stack, a few microseconds that only the
// door and the errors pay: a loop goroutine has the loop's frames on it,
// a coroutine has the runtime's coroutine entry at its bottom.

// errOnLoop is the error of a blocking call of the view on a loop outside
// an async procedure.
var errOnLoop = fmt.Errorf("%w: a net.Conn view blocks, and this goroutine runs an event loop (a callback, another dispatcher's procedure or an iter.Pull coroutine): "+
	"call it from an async procedure of its dispatcher or from another goroutine", ErrNotAsync)

// procCaller returns the async procedure running on d if the caller is
// that procedure, else nil.
func (d *Dispatcher) procCaller() *Coro {
	g := curG()
	if d.sock.runG.Load() != g {
		return nil
	}
	return d.current
}

// blockingCaller classifies the caller of Read, Write or Accept: the
// running procedure (co), a goroutine on a loop (err), or any other
// goroutine (both nil: the door).
func (d *Dispatcher) blockingCaller() (co *Coro, err error) {
	if co := d.procCaller(); co != nil {
		return co, nil
	}
	if onLoop() {
		return nil, errOnLoop
	}
	return nil, nil
}

// doorResult carries the outcome of a door operation back to the
// goroutine waiting for it.
type doorResult[T any] struct {
	v   T
	err error
}

// errDoorClosed: the dispatcher was closed before or while a door
// operation ran.
var errDoorClosed = &connClosedError{}

// connClosedError is the error of a view whose dispatcher was closed:
// it matches ErrClosed and net.ErrClosed.
type connClosedError struct{}

func (*connClosedError) Error() string        { return ErrClosed.Error() }
func (*connClosedError) Is(target error) bool { return target == ErrClosed || target == net.ErrClosed }

// door runs op on d's loop, in an async procedure of its own, and waits
// for its result on the calling goroutine (which must not be a loop's).
func door[T any](d *Dispatcher, op func(co *Coro) (T, error)) (T, error) {
	done := make(chan doorResult[T], 1)
	err := d.CallSoonThreadSafe(func() {
		Async(d, func(co *Coro) (Void, error) {
			v, err := op(co)
			done <- doorResult[T]{v, err}
			return Void{}, nil
		})
	})
	var zero T
	if err != nil {
		return zero, errDoorClosed
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-d.Done():
		// Closed: the procedure was unwound, or never started.
		select {
		case r := <-done:
			return r.v, r.err
		default:
			return zero, errDoorClosed
		}
	}
}

// post queues fn on d's loop without waiting for it (Close and the
// deadline setters from anywhere but the running procedure); it reports
// false if the dispatcher is closed.
func (d *Dispatcher) post(fn func()) bool { return d.CallSoonThreadSafe(fn) == nil }
