package asyncdispatch

import (
	"context"
	"time"
)

// A loop's counters. What must stay true: they are plain fields of the
// Dispatcher, written only by the loop's goroutine, one increment where
// the event happens (an operation starts, a connection is accepted, a
// socket is closed, the loop goes to wait and comes back) — no atomic, no
// lock, nothing another loop writes, so counting costs a loop nothing
// shared. Another goroutine never reads them directly: it asks the loop
// for a copy through its door (Group.Stats, or CallSoonThreadSafe with
// Dispatcher.Stats), so a reader can never see a torn or racing value.

// loopStats are the counters a dispatcher keeps about itself.
type loopStats struct {
	// accepted counts connections accepted (sock_accept.go), closed the
	// sockets closed with CloseSocket (sock.go), ops the socket
	// operations started (sock_op.go).
	accepted, closed, ops uint64
	// rounds counts poller waits; busy is the time spent outside them
	// since the first (the loop's own work: callbacks, timers, I/O).
	rounds uint64
	busy   time.Duration
	// waitStart and waitEnd bound the current (or last) poller wait, on
	// the loop's real monotonic clock (never the fake clock of tests).
	waitStart, waitEnd time.Duration
}

// beforeWait and afterWait bracket the poller wait of a round
// (loop_run.go): two reads of the monotonic clock per round.
func (d *Dispatcher) beforeWait() {
	s := &d.stats
	s.waitStart = time.Since(d.epoch)
	if s.waitEnd != 0 {
		s.busy += s.waitStart - s.waitEnd
	}
}

func (d *Dispatcher) afterWait() {
	s := &d.stats
	s.waitEnd = time.Since(d.epoch)
	s.rounds++
}

// LoopStats is a snapshot of one loop's counters.
type LoopStats struct {
	// Loop is the loop's index in its group and CPU the CPU it is pinned
	// to (-1: not pinned); both are 0 and -1 for a dispatcher outside a
	// group.
	Loop, CPU int
	// Accepted counts the connections the loop accepted; Closed the
	// sockets it closed with CloseSocket (connections, listeners, dialled
	// sockets). Descriptors is the number registered now: the open
	// connections, listeners and other descriptors of the loop.
	Accepted, Closed uint64
	Descriptors      int
	// Operations counts the socket operations started (receives, sends,
	// accepts, whether they completed at once or waited).
	Operations uint64
	// Timers is the number of pending timers; Ready the callbacks queued
	// to run.
	Timers, Ready int
	// Rounds counts the loop's waits for I/O; Busy is the time it spent
	// outside them since the first: running callbacks, timers, async
	// procedures and system calls. Busy over wall time is the loop's load.
	Rounds uint64
	Busy   time.Duration
	// Served counts the connections the group gave to this loop's
	// services (Serve), whichever loop accepted them.
	Served uint64
	// Failures counts the failures the group reported for this loop;
	// Stopped is true once the loop no longer runs (it failed with an
	// error other than a panic, or the group was closed).
	Failures int
	Stopped  bool
}

// Stats returns a snapshot of d's counters. Call it on d's goroutine
// (from a callback, an async procedure, or between Polls); from another
// goroutine go through the loop's door — Group.Stats does — since the
// counters are plain fields the loop writes.
func (d *Dispatcher) Stats() LoopStats {
	s := &d.stats
	return LoopStats{
		CPU:         -1,
		Accepted:    s.accepted,
		Closed:      s.closed,
		Descriptors: d.nfds,
		Operations:  s.ops,
		Timers:      d.timers.Len(),
		Ready:       d.ready.len(),
		Rounds:      s.rounds,
		Busy:        s.busy,
	}
}

// Stats returns a snapshot of every loop's counters, in loop order. Each
// loop copies its own counters on its goroutine, through its door, so the
// snapshot is never torn and the loops pay nothing for being watched
// between calls. A stopped loop reports its counters from when it
// stopped. If ctx ends before every loop has answered, Stats returns
// what it has (loops that did not answer have only Loop and CPU set) and
// ctx's error. Do not call it from one of the group's loops.
func (g *Group) Stats(ctx context.Context) ([]LoopStats, error) {
	out := make([]LoopStats, len(g.loops))
	answers := make([]chan LoopStats, len(g.loops))
	for i, l := range g.loops {
		out[i] = LoopStats{Loop: i, CPU: l.cpu}
		ch := make(chan LoopStats, 1)
		answers[i] = ch
		final := func() {
			g.mu.Lock()
			st := l.final
			st.Loop, st.CPU, st.Stopped = l.idx, l.cpu, true
			st.Failures = l.nfail
			g.mu.Unlock()
			ch <- st
		}
		if l.d == nil {
			final()
			continue
		}
		// The drop runs during the loop's teardown, before it records its
		// final counters: answer after it has.
		if l.d.postOr(func() { ch <- l.stats() }, func() { go func() { <-l.exited; final() }() }) != nil {
			go func() { <-l.exited; final() }()
		}
	}
	for i, ch := range answers {
		select {
		case st := <-ch:
			out[i] = st
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// stats is the loop's snapshot, on its goroutine.
func (l *groupLoop) stats() LoopStats {
	st := l.d.Stats()
	st.Loop, st.CPU = l.idx, l.cpu
	for _, s := range l.serving {
		if s != nil {
			st.Served += s.served
		}
	}
	l.g.mu.Lock()
	st.Failures = l.nfail
	l.g.mu.Unlock()
	return st
}
