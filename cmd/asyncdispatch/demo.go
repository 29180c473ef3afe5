package main

import (
	"context"
	"fmt"
	"io"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/cmd/asyncdispatch/internal/echoload"
	"github.com/asyncdispatch/asyncdispatch/cmd/asyncdispatch/internal/hist"
	"github.com/asyncdispatch/asyncdispatch/internal/server"
)

// demo runs an echo server on a group of loops (--loops, one per CPU by
// default) and its clients on the command's own dispatcher: the server
// is an async procedure per connection, each client an async procedure
// keeping a few lines in flight and checking every echoed byte; a
// repeating timer prints progress and every server loop's counters, a
// sleep ends the load, a graceful shutdown with a deadline ends the
// server.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("demo", "An echo server on 127.0.0.1 on --loops loops, and many clients on one more\ndispatcher, printing progress and the loops' counters every second, and a summary.", stdout, stderr)
	dur := c.fs.Duration("duration", 10*time.Second, "how long to run the load")
	conns := c.fs.Int("conns", 200, "client connections")
	pipe := c.fs.Int("pipeline", 4, "lines in flight per connection")
	size := c.fs.Int("size", 64, "bytes per line")
	lf := addLoopFlags(c, defaultLoops(), "server loops, each on its own thread (default: one per CPU the process may use)", true)
	if code, ok := c.parse(args); !ok {
		return code
	}
	gcfg, err := lf.config()
	if err != nil {
		return c.fail(err)
	}

	d, err := ad.NewDispatcher()
	if err != nil {
		return c.failf("%v", err)
	}
	defer d.Close()
	errw := &lockedWriter{w: stderr}
	gcfg.OnFailure = func(f ad.LoopFailure) { fmt.Fprintf(errw, "demo: %v\n", f) }
	g, err := ad.NewGroup(gcfg)
	if err != nil {
		return c.failf("%v", err)
	}
	defer g.Close()
	addr, err := g.Serve("tcp4", "127.0.0.1:0", func(ld *ad.Dispatcher) (ad.Service, error) {
		srv, err := server.ServeEcho(ld, ad.InvalidFD, server.EchoConfig{})
		if err != nil {
			return nil, err
		}
		return loopServer{srv}, nil
	})
	if err != nil {
		return c.failf("%v", err)
	}
	cfg := echoload.Config{Addr: addr, Conns: *conns, Pipeline: *pipe, Size: *size, Duration: *dur}
	if err := cfg.Check(); err != nil {
		return c.fail(err)
	}
	stop, release, err := stopper(ctx, d)
	if err != nil {
		return c.failf("%v", err)
	}
	defer release()
	cfg.Stop = stop
	var rep loopReport
	loopStats := func() []ad.LoopStats {
		// The loops answer through their doors within a round; this
		// dispatcher (not one of theirs) waits for them.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, _ := g.Stats(sctx)
		return st
	}
	rep.line(loopStats())
	cfg.Progress = func(p echoload.Progress) {
		st := loopStats()
		var open int64
		for _, s := range st {
			open += int64(s.Accepted) - int64(s.Closed)
		}
		fmt.Fprintf(stdout, "%5.1fs  conns %d  server conns %d  msgs %s  %s msg/s (avg %s)  p50 %v  p99 %v\n",
			p.Elapsed.Seconds(), p.Conns, max(open, 0), count(p.Messages), count(int64(p.Rate)), count(int64(p.Avg)),
			hist.Round(p.P50), hist.Round(p.P99))
		fmt.Fprintf(stdout, "       loops  %s\n", rep.line(st))
	}
	fmt.Fprintf(stdout, "demo: echo server on %s (%s); %s, %s of %s in flight on each, for %v (Ctrl-C stops early)\n",
		addr, describe(gcfg, g.Len(), true), plural(*conns, "client"), plural(*pipe, "line"), plural(*size, "byte"), *dur)

	began := time.Now()
	res, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*echoload.Result, error) {
		return echoload.Run(co, d, cfg)
	}))
	if err != nil {
		return c.failf("%v", err)
	}
	// Every client has closed; the server's connections see the end of
	// their streams and finish.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		fmt.Fprintf(errw, "demo: server shutdown: %v\n", err)
	}

	if res.Stopped {
		fmt.Fprintln(stdout, "interrupted: the summary covers the run so far")
	}
	h := &res.Latency
	fmt.Fprintf(stdout, "summary: connections=%d messages=%s msg/s=%s p50=%v p99=%v p999=%v errors=%d mismatches=%d bytes-checked=%s\n",
		res.Conns, count(res.Messages), count(int64(res.Rate())), hist.Round(h.Quantile(0.5)), hist.Round(h.Quantile(0.99)),
		hist.Round(h.Quantile(0.999)), res.Errors, res.Mismatches, count(res.BytesChecked))
	st, _ := g.Stats(context.Background())
	fmt.Fprintln(stdout, "server loops:")
	summary(stdout, st, time.Since(began))
	if !res.OK() {
		return c.failf("%v", res.FirstError)
	}
	return 0
}
