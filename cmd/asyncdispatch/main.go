// Command asyncdispatch shows and measures the asyncdispatch library.
//
//	asyncdispatch demo [-duration 10s]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "demo":
		os.Exit(demo(os.Args[2:]))
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "asyncdispatch: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: asyncdispatch <command> [flags]

commands:
  demo    run timers and async procedures on one dispatcher and print a summary`)
}

func demo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dur := fs.Duration("duration", 10*time.Second, "how long to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	d, err := ad.NewDispatcher()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	ticks := 0
	d.AddTimer(time.Second, false, func(ad.AsyncFD) bool {
		ticks++
		fmt.Printf("tick %d\n", ticks)
		return false
	})
	worker := func(co *ad.Coro) (int, error) {
		n := 0
		for deadline := time.Now().Add(*dur); time.Now().Before(deadline); n++ {
			if _, err := ad.Await(co, d.SleepAsync(time.Millisecond)); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	var fs2 []*ad.Future[int]
	for i := 0; i < 100; i++ {
		fs2 = append(fs2, ad.Async(d, worker))
	}
	counts, err := ad.WaitFor(ad.All(fs2...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	fmt.Printf("100 async procedures slept %d times in %v\n", total, *dur)
	return 0
}
