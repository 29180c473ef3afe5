package asyncdispatch_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// An event callback that panics: the panic is Poll's error, and the event
// stays registered and working.
func TestEventCallbackPanicKeepsEvent(t *testing.T) {
	d := newD(t)
	ev, err := ad.NewAsyncEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	calls := 0
	if err := d.AddEvent(ev, func(ad.AsyncFD) bool {
		calls++
		if calls == 1 {
			panic("event boom")
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	ev.Trigger()
	var pe *ad.PanicError
	if err := d.Poll(time.Second); !errors.As(err, &pe) || pe.Value != "event boom" {
		t.Fatalf("Poll: %v", err)
	}
	ev.Trigger()
	if err := d.Poll(time.Second); err != nil || calls != 2 {
		t.Fatalf("second trigger: %v, %d calls", err, calls)
	}
	if d.HasPendingOperations() {
		t.Fatal("event still pending after its callback returned true")
	}
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

// ReadAll of a nil stream fails instead of crashing.
func TestReadAllNil(t *testing.T) {
	f := ad.ReadAll[string](nil)
	if !errors.Is(f.Err(), ad.ErrNilFuture) {
		t.Fatal(f.Err())
	}
}
