package asyncdispatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
)

// Events (Nim's AsyncEvent).
//
// The Nim names map to these as listed in doc.go (unregister(ev) is
// UnregisterEvent / AsyncEvent.Unregister, since Go cannot overload).
//
// What must stay true:
//   - the eventfd is the counter of triggers not yet seen by a callback:
//     only the callback wrapper reads it, so a trigger that arrives while
//     the event is not registered (or after Unregister, before the next
//     poll) stays there and is delivered when the event is added again;
//   - Trigger may run on any goroutine while Close runs on the loop: mu
//     keeps the descriptor number from being closed (and reused) under a
//     write in progress;
//   - reg is the current registration, nil when the event is not
//     registered; each AddEvent makes a new one, so the wrapper of an old
//     registration can tell it has been replaced.

var (
	// ErrEventRegistered: AddEvent of an event that is registered already
	// (with this or another dispatcher). Nim's assertion text; errors.Is
	// matches ErrAlreadyRegistered too.
	ErrEventRegistered error = &aliasError{"Event is already registered in the queue!", ErrAlreadyRegistered}

	// ErrEventNotRegistered: unregistering an event that is not registered
	// (twice, or after its callback returned true; Nim #5298 asserts).
	// errors.Is matches ErrNotRegistered too.
	ErrEventNotRegistered error = &aliasError{"Event is not registered in the queue!", ErrNotRegistered}

	// ErrEventClosed: Trigger, AddEvent or Close of a closed event.
	ErrEventClosed = errors.New("asyncdispatch: event is closed")
)

// AsyncEvent is an event that any goroutine can trigger and one dispatcher
// can wait for (Nim's AsyncEvent): an eventfd on Linux. Several triggers
// before the loop sees them coalesce into one callback call.
//
// Trigger is safe from any goroutine. AddEvent, Unregister and Close of a
// registered event must be called on the goroutine of the dispatcher it is
// registered with; an unregistered event may be closed anywhere (but not
// concurrently with AddEvent). Closing the dispatcher closes the events
// registered with it.
type AsyncEvent struct {
	// mu guards fd against Close while Trigger writes to it.
	mu sync.RWMutex
	// fd is the eventfd; -1 once closed.
	fd int
	// reg is the current registration, nil while unregistered (loop-owned).
	reg *eventReg
}

// eventReg is one AddEvent registration.
type eventReg struct {
	ev *AsyncEvent
	d  *Dispatcher
	s  *fdState
	cb Callback
}

// NewAsyncEvent creates an event (an eventfd, close-on-exec and
// non-blocking). It is not registered with any dispatcher: use AddEvent.
func NewAsyncEvent() (*AsyncEvent, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &AsyncEvent{fd: fd}, nil
}

// Trigger signals the event; it is safe to call from any goroutine and
// wakes the dispatcher the event is registered with. Triggers that arrive
// before the loop looks coalesce into one callback call; a trigger while
// the event is not registered is kept until it is added again. It returns
// ErrEventClosed after Close.
func (ev *AsyncEvent) Trigger() error {
	ev.mu.RLock()
	defer ev.mu.RUnlock()
	if ev.fd < 0 {
		return ErrEventClosed
	}
	var one [8]byte // the eventfd counter is a host-order uint64
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(ev.fd, one[:])
		switch err {
		case nil, unix.EAGAIN:
			// EAGAIN: the counter is saturated, so a trigger is pending
			// anyway.
			return nil
		case unix.EINTR:
			continue
		}
		return os.NewSyscallError("write", err)
	}
}

// AddEvent calls cb on the loop each time ev has been triggered, until cb
// returns true; the event is then unregistered (it stays usable and may be
// added again). cb runs directly from Poll, like fd callbacks, and
// receives the event's descriptor. The event counts as an active
// descriptor while registered.
//
// It returns ErrEventRegistered if ev is registered already (here or with
// another dispatcher), ErrEventClosed if ev is closed, ErrNilCallback for a
// nil cb and ErrClosed on a closed dispatcher.
func (d *Dispatcher) AddEvent(ev *AsyncEvent, cb Callback) error {
	if cb == nil {
		return ErrNilCallback
	}
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidFD)
	}
	if d.closed {
		return ErrClosed
	}
	if ev.reg != nil {
		return ErrEventRegistered
	}
	ev.mu.RLock()
	fd := ev.fd
	ev.mu.RUnlock()
	if fd < 0 {
		return ErrEventClosed
	}
	s, err := d.register(AsyncFD(fd), true)
	if err != nil {
		return err
	}
	r := &eventReg{ev: ev, d: d, s: s, cb: cb}
	// Close of the dispatcher closes the event (the fd table's owned
	// descriptors are closed at teardown).
	s.closer = func() { ev.closeFD() }
	if err := d.addWaiter(AsyncFD(fd), poller.Read, waiter{cb: r.fire}); err != nil {
		d.unregister(s, ErrNotRegistered)
		return err
	}
	ev.reg = r
	return nil
}

// fire is the fd callback of a registration: consume the counter (this is
// the coalescing), run the user's callback, and unregister if it is done.
func (r *eventReg) fire(fd AsyncFD) bool {
	ev := r.ev
	if ev.reg != r {
		return true
	}
	var buf [8]byte
	for {
		_, err := unix.Read(int(fd), buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// EAGAIN: nothing there after all (a spurious wakeup); keep
			// waiting.
			return false
		}
		break
	}
	if !r.call(fd) {
		return false
	}
	// The callback may have unregistered or closed the event itself, or
	// even re-added it (a new registration): touch only our own.
	if ev.reg == r {
		r.unregister()
	}
	return true
}

// call runs the user's callback. A panic goes to Poll's error and counts
// as "keep me": the event stays registered and working, instead of staying
// registered with its callback dropped.
func (r *eventReg) call(fd AsyncFD) (done bool) {
	defer func() {
		if p := recover(); p != nil {
			r.d.checkErr = append(r.d.checkErr, r.d.recovered(p))
			done = false
		}
	}()
	return r.cb(fd)
}

// unregister removes the registration. The eventfd stays open and keeps
// its counter.
func (r *eventReg) unregister() {
	r.ev.reg = nil
	if r.d.lookup(AsyncFD(r.s.fd)) == r.s {
		r.d.unregister(r.s, ErrNotRegistered)
	}
}

// UnregisterEvent removes ev from d: its callback will not run again, even
// for a trigger that is pending but not yet processed (Nim #5304); such a
// trigger is delivered if the event is added again. It returns
// ErrEventNotRegistered if ev is not registered with d (unregistering twice
// is an error, not a crash as in Nim #5298). It may be called from ev's own
// callback (Nim #5331).
func (d *Dispatcher) UnregisterEvent(ev *AsyncEvent) error {
	if ev == nil || ev.reg == nil || ev.reg.d != d {
		return ErrEventNotRegistered
	}
	ev.reg.unregister()
	return nil
}

// Unregister removes the event from the dispatcher it is registered with
// (see Dispatcher.UnregisterEvent).
func (ev *AsyncEvent) Unregister() error {
	if ev.reg == nil {
		return ErrEventNotRegistered
	}
	return ev.reg.d.UnregisterEvent(ev)
}

// Close unregisters the event if it is registered, then closes its
// descriptor (Nim's close leaves a registered event counted as pending
// forever; PR #4694 proposed this fix). Later Triggers return
// ErrEventClosed; a second Close returns ErrEventClosed.
func (ev *AsyncEvent) Close() error {
	if r := ev.reg; r != nil {
		r.unregister()
	}
	return ev.closeFD()
}

func (ev *AsyncEvent) closeFD() error {
	ev.reg = nil
	ev.mu.Lock()
	fd := ev.fd
	ev.fd = -1
	ev.mu.Unlock()
	if fd < 0 {
		return ErrEventClosed
	}
	if err := unix.Close(fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
