package asyncdispatch_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// A failed future dropped without anyone reading its error is reported
// (Nim's `discard fut` loses it silently); one whose error was read, or a
// cancelled one, is not.
func TestUnseenFailureReported(t *testing.T) {
	got := make(chan error, 10)
	lost := errors.New("nobody reads me")
	read := errors.New("somebody reads me")
	// Futures dropped by earlier tests may be collected now too: only
	// this test's own errors are looked at.
	ad.SetUnhandledErrorHandler(func(err error) {
		if errors.Is(err, lost) || errors.Is(err, read) {
			got <- err
		}
	})
	defer ad.SetUnhandledErrorHandler(nil)
	d := newD(t)
	func() {
		ad.Async(d, func(co *ad.Coro) (int, error) { return 0, lost }) // dropped
		f := ad.Async(d, func(co *ad.Coro) (int, error) { return 0, read })
		f.Err()
		ad.NewFuture[int](d, "cancelled").Cancel()
	}()
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case err := <-got:
			var ue *ad.UnhandledError
			if !errors.Is(err, lost) || !errors.As(err, &ue) || ue.Proc == "" {
				t.Fatalf("reported %v", err)
			}
			// Give the other two a chance to be (wrongly) reported.
			for i := 0; i < 5; i++ {
				runtime.GC()
				select {
				case err := <-got:
					t.Fatalf("also reported: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			return
		case <-deadline:
			t.Fatal("the dropped failure was never reported")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
