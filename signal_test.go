package asyncdispatch_test

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// os/signal starts a goroutine of its own, for good, on the first Notify
// in the process; leakcheck.Run starts it before taking its baseline, so
// it is not counted as a leak of AddSignal.

// kill sends sig to the test process.
func kill(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

// A real signal reaches the callback on the loop; several registrations
// for one signal each fire, in order, and returning true removes only that
// one. When the last goes, nothing is pending and no goroutine is left.
func TestAddSignal(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var got []string
		if err := d.AddSignal(syscall.SIGUSR1, func(fd ad.AsyncFD) bool {
			if fd != ad.InvalidFD {
				t.Errorf("signal callback got fd %d", fd)
			}
			got = append(got, "once")
			return true
		}); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := d.AddSignal(os.Signal(syscall.SIGUSR1), func(ad.AsyncFD) bool {
			got = append(got, "twice")
			n++
			return n == 2
		}); err != nil {
			t.Fatal(err)
		}
		if !d.HasPendingOperations() {
			t.Fatal("signal registrations are not pending work")
		}
		if d.ActiveDescriptors() != 0 {
			t.Fatalf("ActiveDescriptors = %d: signal registrations use no descriptor", d.ActiveDescriptors())
		}

		kill(t, syscall.SIGUSR1)
		pollUntilDone(t, d, 5*time.Second, func() bool { return len(got) == 2 })
		if got[0] != "once" || got[1] != "twice" {
			t.Fatalf("first signal: %v, want [once twice]", got)
		}
		kill(t, syscall.SIGUSR1)
		pollUntilDone(t, d, 5*time.Second, func() bool { return len(got) == 3 })
		if got[2] != "twice" {
			t.Fatalf("second signal: %v, want only [twice] more", got)
		}
		if d.HasPendingOperations() {
			t.Fatal("still pending after the last registration returned true")
		}
		if err := d.Poll(0); !errors.Is(err, ad.ErrNoWork) {
			t.Fatalf("Poll: %v", err)
		}
	})
}

// A loop whose only work is a signal registration waits for the signal
// (RunForever does not stop with ErrNoWork), as a Nim signalfd keeps poll
// busy; the registrations of different signals are independent.
func TestAddSignalKeepsLoopAlive(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		var got []syscall.Signal
		d.AddSignal(syscall.SIGUSR2, func(ad.AsyncFD) bool {
			got = append(got, syscall.SIGUSR2)
			d.Close()
			return false
		})
		d.AddSignal(syscall.SIGUSR1, func(ad.AsyncFD) bool {
			got = append(got, syscall.SIGUSR1)
			kill(t, syscall.SIGUSR2)
			return true
		})
		go func() {
			time.Sleep(20 * time.Millisecond) // let RunForever block (not needed for correctness)
			syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		}()
		guard := time.AfterFunc(10*time.Second, func() {
			t.Error("no signal within 10s")
			d.CallSoonThreadSafe(func() { d.Close() })
		})
		defer guard.Stop()
		if err := d.RunForever(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != syscall.SIGUSR1 || got[1] != syscall.SIGUSR2 {
			t.Fatalf("signals: %v", got)
		}
	})
}

func TestAddSignalErrors(t *testing.T) {
	d := newD(t)
	cb := func(ad.AsyncFD) bool { return true }
	for _, sig := range []os.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.Signal(0), os.Interrupt, fakeSignal{}} {
		err := d.AddSignal(sig, cb)
		if sig == os.Interrupt {
			if err != nil {
				t.Fatalf("os.Interrupt: %v", err)
			}
			continue
		}
		if !errors.Is(err, ad.ErrInvalidSignal) {
			t.Errorf("AddSignal(%v): %v", sig, err)
		}
	}
	if err := d.RemoveSignal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveSignal(os.Interrupt); !errors.Is(err, ad.ErrNotRegistered) {
		t.Fatalf("RemoveSignal twice: %v", err)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after RemoveSignal")
	}
	if err := d.AddSignal(syscall.SIGUSR1, nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatalf("nil callback: %v", err)
	}
	d.Close()
	if err := d.AddSignal(syscall.SIGUSR1, cb); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("closed dispatcher: %v", err)
	}
}

type fakeSignal struct{}

func (fakeSignal) String() string { return "fake" }
func (fakeSignal) Signal()        {}

// Close of the dispatcher stops the forwarding goroutines (checkLeaks), and
// two dispatchers each get the signal.
func TestAddSignalTwoDispatchersAndClose(t *testing.T) {
	checkLeaks(t, func() {
		d1, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		n1, n2 := 0, 0
		d1.AddSignal(syscall.SIGUSR2, func(ad.AsyncFD) bool { n1++; return false })
		d1.AddSignal(syscall.SIGUSR1, func(ad.AsyncFD) bool { return false })
		d2.AddSignal(syscall.SIGUSR2, func(ad.AsyncFD) bool { n2++; return false })
		kill(t, syscall.SIGUSR2)
		pollUntilDone(t, d1, 5*time.Second, func() bool { return n1 == 1 })
		pollUntilDone(t, d2, 5*time.Second, func() bool { return n2 == 1 })
		d1.Close()
		d2.Close()
	})
}

// Signals that do not exist are refused instead of waiting forever.
func TestAddSignalOutOfRange(t *testing.T) {
	d := newD(t)
	for _, sig := range []syscall.Signal{0, -1, 65, 1000, syscall.SIGKILL} {
		if err := d.AddSignal(sig, func(ad.AsyncFD) bool { return true }); !errors.Is(err, ad.ErrInvalidSignal) {
			t.Errorf("AddSignal(%d): %v", int(sig), err)
		}
	}
	if d.HasPendingOperations() {
		t.Fatal("a refused signal keeps the loop waiting")
	}
}
