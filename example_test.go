package asyncdispatch_test

import (
	"errors"
	"fmt"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The reference's first program: an async procedure awaiting a timer.
func Example() {
	d, _ := ad.NewDispatcher()
	defer d.Close()

	fetchData := func(co *ad.Coro) (string, error) {
		if _, err := ad.Await(co, d.SleepAsync(50*time.Millisecond)); err != nil {
			return "", err
		}
		return "data", nil
	}
	main := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		data, err := fetchData(co) // Nim: let data = await fetchData()
		if err != nil {
			return ad.Void{}, err
		}
		fmt.Println(data)
		return ad.Void{}, nil
	})
	if _, err := ad.WaitFor(main); err != nil {
		fmt.Println("error:", err)
	}
	// Output: data
}

// Errors are returned, not raised; errors.Is sees through the trace.
func ExampleAwait_errors() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	errIO := errors.New("IOError: connection lost")
	someAsyncOp := func(co *ad.Coro) (string, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return "", errIO
	}
	main := ad.Async(d, func(co *ad.Coro) (int, error) {
		_, err := ad.Await(co, ad.Async(d, someAsyncOp))
		if errors.Is(err, errIO) {
			fmt.Println("Error:", err)
		}
		return 0, nil
	})
	ad.WaitFor(main)
	// Output: Error: IOError: connection lost
}

// AddTimer with the bool protocol: true stops the timer.
func ExampleDispatcher_AddTimer() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	count := 0
	d.AddTimer(10*time.Millisecond, false, func(ad.AsyncFD) bool {
		count++
		fmt.Println("Tick #", count)
		return count >= 3
	})
	err := d.RunForever() // returns once nothing is pending
	fmt.Println(err)
	// Output:
	// Tick # 1
	// Tick # 2
	// Tick # 3
	// No handles or timers registered in dispatcher.
}

// WithTimeout reports whether the future won; Timeout cancels the loser.
func ExampleWithTimeout() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	longOp := d.SleepAsync(5 * time.Second)
	completed, _ := ad.WaitFor(ad.WithTimeout(longOp, 20*time.Millisecond))
	fmt.Println("completed:", completed, "still running:", !longOp.Finished())
	_, err := ad.WaitFor(ad.Timeout(longOp, 20*time.Millisecond))
	fmt.Println(err, "| cancelled:", longOp.Cancelled())
	// Output:
	// completed: false still running: true
	// asyncdispatch: timed out | cancelled: true
}

// All gathers concurrent procedures' values in argument order.
func ExampleAll() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	work := func(ms int) *ad.Future[int] {
		return ad.Async(d, func(co *ad.Coro) (int, error) {
			ad.Await(co, d.SleepAsync(time.Duration(ms)*time.Millisecond))
			return ms, nil
		})
	}
	vals, _ := ad.WaitFor(ad.All(work(30), work(10), work(20)))
	fmt.Println(vals)
	// Output: [30 10 20]
}

// Callbacks are queued and run by Poll in FIFO order.
func ExampleDispatcher_CallSoon() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	f := ad.NewFuture[string](d, "example")
	f.AddCallback(func() { v, _ := f.Read(); fmt.Println("callback saw", v) })
	d.CallSoon(func() { fmt.Println("called soon") })
	f.Complete("value")
	fmt.Println("completed")
	d.Poll(0)
	// Output:
	// completed
	// called soon
	// callback saw value
}

// Call is Nim's `await proc()`: the procedure runs on the caller's
// coroutine, and an error it returns names it in the async trace.
func ExampleCall() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	errNotFound := errors.New("not found")
	lookup := func(co *ad.Coro) (string, error) {
		if _, err := ad.Await(co, d.SleepAsync(time.Millisecond)); err != nil {
			return "", err
		}
		return "", errNotFound
	}
	main := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		_, err := ad.Call(co, lookup) // Nim: let v = await lookup()
		var ae *ad.AsyncError
		fmt.Println(errors.Is(err, errNotFound), errors.As(err, &ae) && len(ae.Procs) == 1)
		return ad.Void{}, nil
	})
	ad.WaitFor(main)
	// Output: true true
}
