package asyncdispatch

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Signals (Nim's addSignal).
//
// Why not signalfd, as Nim does: a signalfd only receives a signal that is
// blocked in every thread that could otherwise take it. Nim blocks it in
// the calling thread; Go's runtime owns signal handling, runs goroutines
// on threads it creates at will, and installs its own handlers with
// unblocked masks, so a blocked mask cannot be made to hold across the
// program's threads and the signal would go to the runtime or to the
// signalfd unpredictably. Instead AddSignal bridges os/signal into the
// loop: one channel per (dispatcher, signal) given to signal.Notify, and
// one forwarding goroutine per channel that hands each arrival to the loop
// with CallSoonThreadSafe. The callbacks then run on the loop, from the
// ready queue.
//
// What must stay true:
//   - a bridge exists exactly while its signal has registrations on its
//     dispatcher; the last one to go calls signal.Stop (so the signal's
//     default behaviour comes back, unless somebody else is notified) and
//     waits for the forwarding goroutine to exit, and so does Close of the
//     dispatcher (through atClose): no goroutine outlives either;
//   - one channel per signal, never one shared channel: os/signal cannot
//     take a single signal off a channel, and re-subscribing a shared one
//     would leave a window in which the signal gets its default action
//     (for SIGINT or SIGTERM, exiting);
//   - each registration holds one extRef: a loop with a signal handler
//     and nothing else keeps waiting (RunForever blocks until the signal)
//     instead of stopping with ErrNoWork, as a Nim signalfd counts as
//     pending. Registrations do not count in ActiveDescriptors (there is
//     no descriptor).
//
// Standard signals coalesce: several arrivals before the forwarding
// goroutine runs may be delivered once. (os/signal itself starts one
// goroutine on the first Notify in the process, which lives as long as
// the process; that one is the standard library's, not ours.)

// ErrInvalidSignal: AddSignal of a value that is not a syscall.Signal, or of
// a signal that cannot be caught (SIGKILL, SIGSTOP).
var ErrInvalidSignal = errors.New("asyncdispatch: invalid signal")

// signalKey is the atClose key of a signal's bridge.
type signalKey syscall.Signal

// signalBridge forwards one signal to one dispatcher.
type signalBridge struct {
	d   *Dispatcher
	sig syscall.Signal
	// regs are the registrations in the order they were added (loop-owned).
	regs []*signalReg
	// ch is the channel given to signal.Notify; quit stops the forwarding
	// goroutine, which closes done when it exits.
	ch   chan os.Signal
	quit chan struct{}
	done chan struct{}
	// stopped: the bridge is shut down; deliveries still queued are dropped.
	stopped bool
}

type signalReg struct {
	cb      Callback
	removed bool
}

// AddSignal calls cb on the loop each time the process receives sig, until
// cb returns true (Nim's addSignal). Several registrations for one signal
// each run, in the order they were added, and returning true removes only
// the registration that returned it. cb receives InvalidFD (there is no
// descriptor; see the comment at the top of signal.go for why).
//
// While any registration exists the signal is caught (signal.Notify) and
// the loop counts it as pending work; when the last one goes, and at Close
// of the dispatcher, it is released with signal.Stop. sig must be a
// syscall.Signal that can be caught (ErrInvalidSignal otherwise).
func (d *Dispatcher) AddSignal(sig os.Signal, cb Callback) error {
	d.checkOwner()
	if cb == nil {
		return ErrNilCallback
	}
	s, ok := sig.(syscall.Signal)
	// Linux numbers signals 1..64 (SIGRTMAX); anything else could never
	// be delivered and would keep the loop waiting forever.
	if !ok || s <= 0 || s > 64 || s == syscall.SIGKILL || s == syscall.SIGSTOP {
		return fmt.Errorf("%w: %v", ErrInvalidSignal, sig)
	}
	if d.closed {
		return ErrClosed
	}
	b, _ := d.atClose[signalKey(s)].(*signalBridge)
	if b == nil {
		b = &signalBridge{
			d:    d,
			sig:  s,
			ch:   make(chan os.Signal, 16),
			quit: make(chan struct{}),
			done: make(chan struct{}),
		}
		signal.Notify(b.ch, s)
		go b.forward()
		if d.atClose == nil {
			d.atClose = make(map[any]closeHook)
		}
		d.atClose[signalKey(s)] = b
	}
	b.regs = append(b.regs, &signalReg{cb: cb})
	d.extRefs++
	return nil
}

// RemoveSignal removes every registration for sig from d (Nim has no
// counterpart: it would unregister the signalfd). It returns an error
// matching ErrNotRegistered if there is none.
func (d *Dispatcher) RemoveSignal(sig os.Signal) error {
	s, _ := sig.(syscall.Signal)
	b, _ := d.atClose[signalKey(s)].(*signalBridge)
	if b == nil {
		return fmt.Errorf("%w: no handler for signal %v", ErrNotRegistered, sig)
	}
	for len(b.regs) > 0 {
		b.remove(b.regs[0])
	}
	return nil
}

// forward is the forwarding goroutine.
func (b *signalBridge) forward() {
	defer close(b.done)
	for {
		select {
		case <-b.ch:
			if b.d.callSoonThreadSafe(b.deliver) != nil {
				return // closed: the close hook stops the rest
			}
		case <-b.quit:
			return
		}
	}
}

// deliver runs the registrations on the loop. Registrations added by a
// callback wait for the next arrival.
func (b *signalBridge) deliver() {
	if b.stopped {
		return
	}
	regs := append([]*signalReg(nil), b.regs...)
	for _, r := range regs {
		if r.removed || b.d.closed {
			continue
		}
		if b.call(r) && !r.removed {
			b.remove(r)
		}
	}
}

// call runs one callback; a panic is reported by Poll and removes the
// registration, as for fd callbacks.
func (b *signalBridge) call(r *signalReg) (done bool) {
	done = true
	defer func() {
		if p := recover(); p != nil {
			b.d.checkErr = append(b.d.checkErr, b.d.recovered(p))
		}
	}()
	return r.cb(InvalidFD)
}

// remove drops one registration, and the bridge with the last one.
func (b *signalBridge) remove(r *signalReg) {
	for i, x := range b.regs {
		if x == r {
			b.regs = append(b.regs[:i:i], b.regs[i+1:]...)
			r.removed = true
			b.d.extRefs--
			break
		}
	}
	if len(b.regs) == 0 && !b.stopped {
		delete(b.d.atClose, signalKey(b.sig))
		b.stop()
	}
}

// stop releases the signal and waits for the forwarding goroutine to exit
// (it never waits for the loop, so this cannot deadlock).
func (b *signalBridge) stop() {
	b.stopped = true
	signal.Stop(b.ch)
	close(b.quit)
	<-b.done
}

func (b *signalBridge) dispatcherClosed() {
	for _, r := range b.regs {
		r.removed = true
	}
	b.regs = nil
	b.stop()
}
