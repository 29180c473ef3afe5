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

// demo runs an echo server and its clients on one dispatcher: the server
// is an async procedure per connection, each client an async procedure
// keeping a few lines in flight and checking every echoed byte; a
// repeating timer prints progress, a sleep ends the load, a timeout
// bounds the drain.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("demo", "One dispatcher serves an echo server on 127.0.0.1 and runs many\nclients against it, printing progress every second and a summary.", stdout, stderr)
	dur := c.fs.Duration("duration", 10*time.Second, "how long to run the load")
	conns := c.fs.Int("conns", 200, "client connections")
	pipe := c.fs.Int("pipeline", 4, "lines in flight per connection")
	size := c.fs.Int("size", 64, "bytes per line")
	if code, ok := c.parse(args); !ok {
		return code
	}

	d, err := ad.NewDispatcher()
	if err != nil {
		return c.failf("%v", err)
	}
	defer d.Close()
	ln, err := d.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c.failf("%v", err)
	}
	srv, err := server.ServeEcho(d, ln, server.EchoConfig{})
	if err != nil {
		return c.failf("%v", err)
	}
	cfg := echoload.Config{Addr: srv.Addr(), Conns: *conns, Pipeline: *pipe, Size: *size, Duration: *dur}
	if err := cfg.Check(); err != nil {
		return c.fail(err)
	}
	stop, release, err := stopper(ctx, d)
	if err != nil {
		return c.failf("%v", err)
	}
	defer release()
	cfg.Stop = stop
	cfg.Progress = func(p echoload.Progress) {
		fmt.Fprintf(stdout, "%5.1fs  conns %d  server conns %d  msgs %s  %s msg/s (avg %s)  p50 %v  p99 %v\n",
			p.Elapsed.Seconds(), p.Conns, srv.Conns(), count(p.Messages), count(int64(p.Rate)), count(int64(p.Avg)),
			hist.Round(p.P50), hist.Round(p.P99))
	}
	fmt.Fprintf(stdout, "demo: echo server on %s; %s, %s of %s in flight on each, for %v (Ctrl-C stops early)\n",
		srv.Addr(), plural(*conns, "client"), plural(*pipe, "line"), plural(*size, "byte"), *dur)

	res, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*echoload.Result, error) {
		return echoload.Run(co, d, cfg)
	}))
	if err != nil {
		return c.failf("%v", err)
	}
	// Every client has closed; the server's connections see the end of
	// their streams and finish.
	srv.Shutdown()
	if _, err := ad.WaitFor(ad.Timeout(srv.Done(), 5*time.Second)); err != nil {
		fmt.Fprintf(stderr, "demo: server shutdown: %v\n", err)
	}

	if res.Stopped {
		fmt.Fprintln(stdout, "interrupted: the summary covers the run so far")
	}
	h := &res.Latency
	fmt.Fprintf(stdout, "summary: connections=%d messages=%s msg/s=%s p50=%v p99=%v p999=%v errors=%d mismatches=%d bytes-checked=%s\n",
		res.Conns, count(res.Messages), count(int64(res.Rate())), hist.Round(h.Quantile(0.5)), hist.Round(h.Quantile(0.99)),
		hist.Round(h.Quantile(0.999)), res.Errors, res.Mismatches, count(res.BytesChecked))
	if !res.OK() {
		return c.failf("%v", res.FirstError)
	}
	return 0
}
