//go:build linux

package uring

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lockedThread runs functions on one goroutine locked to its own OS
// thread, until stop is called.
type lockedThread struct {
	fns  chan func()
	done chan struct{}
	tid  int
}

func newLockedThread() *lockedThread {
	l := &lockedThread{fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		l.tid = unix.Gettid()
		close(ready)
		for f := range l.fns {
			f()
		}
		close(l.done)
	}()
	<-ready
	return l
}

func (l *lockedThread) run(f func()) {
	ch := make(chan struct{})
	l.fns <- func() { f(); close(ch) }
	<-ch
}

func (l *lockedThread) stop() { close(l.fns); <-l.done }

// TestSingleIssuerWrongThread: a SingleIssuer ring entered from an OS
// thread other than the one that set it up fails with EEXIST
// (ErrWrongThread), and works again from the right one; so the loop's
// goroutine must stay locked to its thread. A plain ring works from any
// thread.
func TestSingleIssuerWrongThread(t *testing.T) {
	owner, other := newLockedThread(), newLockedThread()
	defer owner.stop()
	defer other.stop()
	if owner.tid == other.tid {
		t.Fatal("two locked goroutines share a thread")
	}
	for _, single := range []bool{true, false} {
		var r *Ring
		var err error
		owner.run(func() { r, err = New(Options{SingleIssuer: single}) })
		if err != nil {
			t.Fatal(err)
		}
		if single && r.SetupFlags()&SetupSingleIssuer == 0 {
			owner.run(func() { r.Close() })
			t.Skip("kernel without IORING_SETUP_SINGLE_ISSUER")
		}
		other.run(func() {
			r.GetSQE().PrepNop(1)
			_, err = r.Submit()
		})
		if single {
			if !errors.Is(err, ErrWrongThread) || !errors.Is(err, unix.EEXIST) {
				t.Errorf("Submit from another thread: %v, want ErrWrongThread (EEXIST)", err)
			}
			// A wait from the wrong thread fails the same way with
			// DEFER_TASKRUN (only the issuer may run its task work).
			if r.SetupFlags()&SetupDeferTaskrun != 0 {
				other.run(func() { _, err = r.SubmitAndWait(1, time.Millisecond) })
				if !errors.Is(err, ErrWrongThread) {
					t.Errorf("SubmitAndWait from another thread: %v, want ErrWrongThread", err)
				}
			}
			// Wake is fine from anywhere.
			other.run(func() { err = r.Wake() })
			if err != nil {
				t.Errorf("Wake from another thread: %v", err)
			}
		} else if err != nil {
			t.Errorf("plain ring, Submit from another thread: %v", err)
		}
		// The NOP is still queued (or was submitted): the owner
		// finishes it.
		owner.run(func() {
			if _, err := r.Submit(); err != nil {
				t.Errorf("Submit from the owner: %v", err)
			}
			waitCQE(t, r, 1)
			if err := r.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}
