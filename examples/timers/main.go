// Timers shows the ways to wait on a dispatcher: AddTimer (a callback,
// once or repeatedly), SleepAsync (a pause an async procedure awaits),
// WithTimeout (did it finish in time? it keeps running either way) and
// Timeout (give up after a while and cancel it), and Cancel.
//
//	go run ./examples/timers            (about a second)
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

	// A repeating timer: the callback runs every 4 units until it
	// returns true (Nim's protocol: true means done).
	ticks := 0
	d.AddTimer(4*unit, false, func(ad.AsyncFD) bool {
		ticks++
		say("tick %d", ticks)
		return ticks == 2
	})

	// job is an async procedure that takes n units.
	job := func(name string, n int) func(co *ad.Coro) (string, error) {
		return func(co *ad.Coro) (string, error) {
			if _, err := ad.Await(co, d.SleepAsync(time.Duration(n)*unit)); err != nil {
				say("%s: stopped: %v", name, err)
				return "", err
			}
			say("%s: done", name)
			return name + " result", nil
		}
	}

	show := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		// SleepAsync: a pause.
		ad.Await(co, d.SleepAsync(unit))
		say("slept 1 unit")

		// WithTimeout: wait at most 2 units for a 3-unit job; it goes on.
		slow := ad.Async(d, job("slow job", 3))
		inTime, _ := ad.Await(co, ad.WithTimeout(slow, 2*unit))
		say("slow job finished within 2 units: %v", inTime)

		// Timeout: give up on a 10-unit job after 2 units; it is
		// cancelled (its SleepAsync fails with ErrCancelled).
		_, err := ad.Await(co, ad.Timeout(ad.Async(d, job("long job", 10)), 2*unit))
		say("gave up on the long job: %v (ErrTimeout: %v)", err, errors.Is(err, ad.ErrTimeout))

		// The slow job has finished meanwhile: its result is there.
		v, _ := ad.Await(co, slow)
		say("slow job's result: %q", v)

		// Cancel: stop a pause directly.
		pause := d.SleepAsync(time.Hour)
		pause.Cancel()
		_, err = ad.Await(co, pause)
		say("an hour's pause, cancelled: %v", err)
		return ad.Void{}, nil
	})
	if _, err := ad.WaitFor(show); err != nil {
		return err
	}
	// Drain runs the loop until nothing is pending: the ticker's last
	// tick.
	if err := d.Drain(time.Minute); err != nil {
		return err
	}
	say("nothing pending any more")
	return nil
}
