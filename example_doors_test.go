package asyncdispatch_test

import (
	"fmt"
	"strings"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Calling a blocking library from async code: Go runs it on a goroutine
// and the future completes on the loop.
func ExampleGo() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	main := ad.Async(d, func(co *ad.Coro) (string, error) {
		return ad.Await(co, ad.Go(d, func() (string, error) {
			return strings.ToUpper("a blocking call"), nil
		}))
	})
	fmt.Println(ad.WaitFor(main))
	// Output: A BLOCKING CALL <nil>
}

// An event triggered from another goroutine runs its callback on the loop.
func ExampleDispatcher_AddEvent() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	ev, _ := ad.NewAsyncEvent()
	defer ev.Close()
	d.AddEvent(ev, func(ad.AsyncFD) bool {
		fmt.Println("triggered")
		return true // done: unregister
	})
	go ev.Trigger()
	for d.HasPendingOperations() {
		d.Poll(time.Second)
	}
	// Output: triggered
}

// A producer and ReadAll (Nim's readAll) on one stream.
func ExampleNewFutureStream() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	fs := ad.NewFutureStream[string](d, "example")
	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for _, s := range []string{"a", "b", "c"} {
			ad.Await(co, fs.Write(s))
			ad.Await(co, d.SleepAsync(time.Millisecond))
		}
		fs.Complete()
		return ad.Void{}, nil
	})
	fmt.Println(ad.WaitFor(ad.ReadAll(fs)))
	// Output: abc <nil>
}
