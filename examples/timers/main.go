// Timers shows the ways to wait on a dispatcher: AddTimer (a callback,
// once or repeatedly), SleepAsync (a pause an async procedure awaits),
// WithTimeout (did it finish in time? it keeps running either way) and
// Timeout (give up after a while and cancel it), and Cancel.
//
//	go run ./examples/timers            (under a second)
//	go run ./examples/timers -unit 1s   (slower, to watch)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func main() {
	unit := flag.Duration("unit", 100*time.Millisecond, "the time unit of the show")
	flag.Parse()
	if err := run(*unit, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(unit time.Duration, out io.Writer) error {
	d, err := ad.NewDispatcher()
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	say := func(format string, args ...any) {
		at := time.Since(start) / unit * unit // rounded down to the unit
		fmt.Fprintf(out, "%5v  %s\n", at, fmt.Sprintf(format, args...))
	}

	// job is an async procedure that takes dur.
	job := func(name string, dur time.Duration) func(co *ad.Coro) (string, error) {
		return func(co *ad.Coro) (string, error) {
			if _, err := ad.Await(co, d.SleepAsync(dur)); err != nil {
				say("%s: stopped: %v", name, err)
				return "", err
			}
			say("%s: done", name)
			return name + " result", nil
		}
	}

	// The show is one async procedure, one step after the other, so that
	// what it prints comes in the same order however late the loop runs
	// (a loaded machine): no two of its timers race each other, each
	// race is a few units against an hour.
	show := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		// SleepAsync: a pause.
		ad.Await(co, d.SleepAsync(unit))
		say("slept 1 unit")

		// AddTimer: a callback every unit until it returns true (Nim's
		// protocol: true means done); here after the third tick, which
		// also completes the future the show waits for.
		ticked := ad.NewFuture[ad.Void](d, "ticker")
		ticks := 0
		d.AddTimer(unit, false, func(ad.AsyncFD) bool {
			ticks++
			say("tick %d", ticks)
			if ticks < 3 {
				return false
			}
			ticked.Complete(ad.Void{})
			return true
		})
		ad.Await(co, ticked)

		// WithTimeout: did it finish in time? Yes for a 1-unit job
		// given an hour (the hour's timer is cancelled then); no for an
		// hour's pause given 2 units, and the pause goes on.
		inTime, _ := ad.Await(co, ad.WithTimeout(ad.Async(d, job("quick job", unit)), time.Hour))
		say("quick job finished within an hour: %v", inTime)
		pause := d.SleepAsync(time.Hour)
		inTime, _ = ad.Await(co, ad.WithTimeout(pause, 2*unit))
		say("an hour's pause finished within 2 units: %v", inTime)

		// Timeout: give up on an hour-long job after 2 units; it is
		// cancelled (its SleepAsync fails with ErrCancelled).
		_, err := ad.Await(co, ad.Timeout(ad.Async(d, job("long job", time.Hour)), 2*unit))
		say("gave up on the long job: %v (ErrTimeout: %v)", err, errors.Is(err, ad.ErrTimeout))

		// Cancel: stop the hour's pause, still running, directly.
		pause.Cancel()
		_, err = ad.Await(co, pause)
		say("the hour's pause, cancelled: %v", err)
		return ad.Void{}, nil
	})
	if _, err := ad.WaitFor(show); err != nil {
		return err
	}
	// Drain runs the loop until nothing is pending: the cancelled long
	// job may still be unwinding.
	if err := d.Drain(time.Minute); err != nil {
		return err
	}
	say("nothing pending any more")
	return nil
}
