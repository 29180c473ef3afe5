package asyncdispatch

import (
	"errors"
	"time"
)

// Deadlines of the net.Conn view, one per direction, on loop timers (the
// model is Go's net.Pipe, src/net/pipe.go's pipeDeadline: a deadline is a
// state, "expired" or not, that a timer flips).
//
// What must stay true:
//   - expired is true exactly while the deadline has passed: set by the
//     timer or by a deadline set in the past, cleared by a later deadline
//     or the zero time. While it is true every Read (or Write) fails at
//     once; when it becomes true, the operations waiting in that
//     direction are stopped and fail with errDeadlineOp, which the view
//     turns into os.ErrDeadlineExceeded;
//   - a deadline never loses data. An operation is stopped only while it
//     is still pending, that is while it waits on its descriptor's wait
//     list and has done no I/O: it is taken off the list (dequeue, which
//     also makes any entry of it left in a list being run stale) and then
//     failed. An operation that completed — in this round, before the
//     timer fired, or in the round before while its procedure has not
//     resumed yet — is not pending any more and keeps its result: the
//     Read returns its bytes and the next Read sees the deadline. (A loop
//     round fires its timers before it handles I/O, so a receive made
//     ready in the same round is stopped before it reads: the bytes stay
//     in the socket.) A stopped send keeps what is left of its buffer, so
//     Write can say how much went out;
//   - one timer per direction, made by the first deadline and re-armed
//     in place afterwards: a deadline set per operation (net/http does)
//     allocates nothing, the same deadline set again costs a comparison,
//     and one set once and left alone costs nothing per operation;
//   - pend lists the operations waiting in the direction (usually one;
//     each suspended procedure's own operation, with its generation then,
//     so an entry of an operation that has moved on is recognised); its
//     array is kept, so waiting allocates nothing either.

// connDeadline is one direction's deadline.
type connDeadline struct {
	timer *Timer
	// at is the deadline in force (Unix nanoseconds of its wall time), 0
	// for none: setting the same deadline again changes nothing.
	at      int64
	expired bool
	pend    []pendingOp
}

// pendingOp is an operation waiting in a direction, as it was queued: a
// procedure's own operation (op), or a listener's accept (acc).
type pendingOp struct {
	op  *coroOp
	gen uint32
	acc *Future[AsyncFD]
}

// errDeadlineOp fails an operation stopped by its deadline; it never
// leaves the package (the view reports os.ErrDeadlineExceeded).
var errDeadlineOp = errors.New("asyncdispatch: deadline passed")

// maxDeadlineWait bounds how far ahead a deadline timer is set: a time
// centuries away (what time.Until gives for a far-off deadline) would
// overflow the loop clock and fire at once. A deadline beyond it is
// practically none.
const maxDeadlineWait = time.Duration(1 << 62)

// await starts op (try first) and waits for it in the procedure on co,
// listed in pend while it waits so the deadline can stop it.
func (dl *connDeadline) await(co *Coro, op *coroOp) (int, error) {
	f := start(co.d, &op.fut, op)
	if f.state != pending {
		return Await(co, f)
	}
	dl.pend = append(dl.pend, pendingOp{op: op, gen: op.gen})
	n, err := Await(co, f)
	dl.drop(func(p *pendingOp) bool { return p.op == op })
	return n, err
}

// awaitAccept is await for a listener's accept, which has a future of its
// own.
func (dl *connDeadline) awaitAccept(co *Coro, f *Future[AsyncFD]) (AsyncFD, error) {
	if f.state != pending {
		return Await(co, f)
	}
	dl.pend = append(dl.pend, pendingOp{acc: f})
	fd, err := Await(co, f)
	dl.drop(func(p *pendingOp) bool { return p.acc == f })
	return fd, err
}

// drop removes the entry for which is reports true.
func (dl *connDeadline) drop(is func(*pendingOp) bool) {
	for i := range dl.pend {
		if is(&dl.pend[i]) {
			last := len(dl.pend) - 1
			dl.pend[i] = dl.pend[last]
			dl.pend[last] = pendingOp{}
			dl.pend = dl.pend[:last]
			return
		}
	}
}

// set applies a new deadline t.
func (dl *connDeadline) set(d *Dispatcher, t time.Time) {
	if t.IsZero() {
		dl.stop()
		dl.at = 0
		dl.expired = false
		return
	}
	at := t.UnixNano()
	if at == dl.at && at != 0 {
		return // the timer is set for it already, or it has passed
	}
	dl.at = at
	dur := time.Until(t)
	if dur <= 0 {
		dl.stop()
		dl.fire(d)
		return
	}
	dl.expired = false
	dl.arm(d, min(dur, maxDeadlineWait))
}

// arm sets the timer to fire after dur, making it the first time.
func (dl *connDeadline) arm(d *Dispatcher, dur time.Duration) {
	if d.closed {
		return
	}
	t := dl.timer
	if t == nil {
		dl.timer, _ = d.AddTimer(dur, true, func(AsyncFD) bool {
			dl.fire(d)
			return true
		})
		return
	}
	// Re-arm in place: out of the heap if it is in it, then back in
	// with the new deadline (a Timer that fired or was stopped is out).
	if t.tm.Queued() {
		d.timers.Remove(&t.tm)
	}
	t.stopped = false
	t.tm.When = d.now() + int64(dur)
	d.timers.Push(&t.tm)
}

// stop stops the timer (the deadline is dropped or replaced).
func (dl *connDeadline) stop() {
	if dl.timer != nil {
		dl.timer.Stop()
	}
}

// fire: the deadline has passed. Every operation still pending in the
// direction is stopped without doing I/O; one that completed keeps its
// result.
func (dl *connDeadline) fire(d *Dispatcher) {
	dl.expired = true
	for _, p := range dl.pend {
		if f := p.acc; f != nil {
			if f.state == pending {
				f.src.cancel() // off the listener's list, no accept made
				f.tryFail(errDeadlineOp)
			}
			continue
		}
		op := p.op
		if op.gen != p.gen || op.fut.state != pending {
			continue
		}
		d.dequeue(&op.opBase)
		op.fut.tryFail(errDeadlineOp)
	}
}
