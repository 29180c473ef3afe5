package main

import (
	"context"
	"fmt"
	"io"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/cmd/asyncdispatch/internal/echoload"
	"github.com/asyncdispatch/asyncdispatch/cmd/asyncdispatch/internal/hist"
)

// bench drives an echo server (ours or any other) from one dispatcher.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("bench echo", `Drive an echo server on loopback from one dispatcher: --conns connections,
each keeping --pipeline messages of --size bytes in flight, every echoed
byte checked. Reports messages/s and a latency histogram.`, stdout, stderr)
	addr := c.fs.String("addr", "127.0.0.1:8080", "echo server `host:port` (loopback only)")
	conns := c.fs.Int("conns", 50, "connections")
	pipe := c.fs.Int("pipeline", 1, "messages in flight per connection")
	size := c.fs.Int("size", 64, "message size in bytes")
	dur := c.fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := c.fs.Duration("warmup", time.Second, "warm-up before measuring")
	quiet := c.fs.Bool("quiet", false, "no progress lines")
	// echo is the only benchmark: "bench --help" is the page of
	// "bench echo", with its flags.
	switch {
	case len(args) > 0 && args[0] == "echo":
		args = args[1:]
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
	case len(args) == 0:
		return c.fail(fmt.Errorf("what to bench? only echo is known"))
	default:
		return c.fail(fmt.Errorf("unknown benchmark %q (only echo is known)", args[0]))
	}
	if code, ok := c.parse(args); !ok {
		return code
	}
	target, err := echoload.CheckLoopback(*addr)
	if err != nil {
		return c.fail(err)
	}
	cfg := echoload.Config{Addr: target, Conns: *conns, Pipeline: *pipe, Size: *size, Warmup: *warmup, Duration: *dur}
	if err := cfg.Check(); err != nil {
		return c.fail(err)
	}

	d, err := ad.NewDispatcher()
	if err != nil {
		return c.failf("%v", err)
	}
	defer d.Close()
	stop, release, err := stopper(ctx, d)
	if err != nil {
		return c.failf("%v", err)
	}
	defer release()
	cfg.Stop = stop
	if !*quiet {
		cfg.Progress = func(p echoload.Progress) {
			if p.Warmup {
				fmt.Fprintf(stdout, "%5.1fs  warming up  conns %d  %s msg/s\n", p.Elapsed.Seconds(), p.Conns, count(int64(p.Rate)))
				return
			}
			fmt.Fprintf(stdout, "%5.1fs  conns %d  msgs %s  %s msg/s (avg %s)  p50 %v  p99 %v\n",
				p.Elapsed.Seconds(), p.Conns, count(p.Messages), count(int64(p.Rate)), count(int64(p.Avg)),
				hist.Round(p.P50), hist.Round(p.P99))
		}
	}
	fmt.Fprintf(stdout, "bench echo: %s, %s, %s of %s in flight on each, %v after %v warm-up\n",
		target, plural(*conns, "connection"), plural(*pipe, "message"), plural(*size, "byte"), *dur, *warmup)
	res, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*echoload.Result, error) {
		return echoload.Run(co, d, cfg)
	}))
	if err != nil {
		return c.failf("%v", err)
	}
	if res.Stopped {
		fmt.Fprintln(stdout, "interrupted: the numbers cover the run so far")
	}
	fmt.Fprintf(stdout, "connections %d  messages %s in %.2fs  %s msg/s  %.2f MB/s each way\n",
		res.Conns, count(res.Messages), res.Elapsed.Seconds(), count(int64(res.Rate())),
		res.Rate()*float64(*size)/1e6)
	fmt.Fprintf(stdout, "latency (send to last echoed byte), %s:\n", pluralCount(res.Latency.Count(), "message"))
	res.Latency.Fprint(stdout)
	fmt.Fprintf(stdout, "errors %d  mismatches %d  bytes checked %s\n", res.Errors, res.Mismatches, count(res.BytesChecked))
	if !res.OK() {
		return c.failf("%v", res.FirstError)
	}
	return 0
}
