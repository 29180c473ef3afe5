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

// bench drives an echo server (ours or any other) from a group of loops.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("bench echo", `Drive an echo server on loopback from --loops dispatchers (each on its own
thread, with its share of the connections): --conns connections, each
keeping --pipeline messages of --size bytes in flight, every echoed byte
checked. Reports messages/s and a latency histogram (p50/p99 of the worst
loop in the progress lines).`, stdout, stderr)
	addr := c.fs.String("addr", "127.0.0.1:8080", "echo server `host:port` (loopback only)")
	conns := c.fs.Int("conns", 50, "connections")
	pipe := c.fs.Int("pipeline", 1, "messages in flight per connection")
	size := c.fs.Int("size", 64, "message size in bytes")
	dur := c.fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := c.fs.Duration("warmup", time.Second, "warm-up before measuring")
	quiet := c.fs.Bool("quiet", false, "no progress lines")
	lf := addLoopFlags(c, 1, "load generator loops, each on its own thread with its share of the connections", false)
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

	gcfg, err := lf.config()
	if err != nil {
		return c.fail(err)
	}
	n := min(gcfg.Loops, cfg.Conns)
	gcfg.Loops = n

	// The command's own dispatcher: signals, progress, the results.
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
	g, err := ad.NewGroup(gcfg)
	if err != nil {
		return c.failf("%v", err)
	}
	defer g.Close()
	loopsNote := ""
	if n > 1 || gcfg.Pin {
		loopsNote = ", on " + describe(gcfg, n, false)
	}
	fmt.Fprintf(stdout, "bench echo: %s, %s, %s of %s in flight on each, %v after %v warm-up%s\n",
		target, plural(*conns, "connection"), plural(*pipe, "message"), plural(*size, "byte"), *dur, *warmup, loopsNote)

	// Each loop runs its share of the connections; what it reports
	// (progress, its result) is posted to d, where it is added up.
	all := ad.NewExternalFuture[[]*echoload.Result](d, "bench")
	results := make([]*echoload.Result, n)
	var firstErr error
	got := 0
	agg := &progressAgg{n: n, quiet: *quiet, w: stdout}
	stops := make([]*ad.Future[ad.Void], n)
	ready := make(chan *ad.Future[ad.Void], n)
	for i := 0; i < n; i++ {
		ld := g.Loop(i)
		lc := cfg
		lc.Conns = cfg.Conns / n
		if i < cfg.Conns%n {
			lc.Conns++
		}
		if err := ld.CallSoonThreadSafe(func() {
			lstop := ad.NewFuture[ad.Void](ld, "stop")
			ready <- lstop
			lc.Stop = lstop
			lc.Progress = func(p echoload.Progress) { d.CallSoonThreadSafe(func() { agg.add(i, p) }) }
			f := ad.Async(ld, func(co *ad.Coro) (*echoload.Result, error) { return echoload.Run(co, ld, lc) })
			f.AddCallback(func() {
				r, err := f.Read()
				d.CallSoonThreadSafe(func() {
					results[i] = r
					if err != nil && firstErr == nil {
						firstErr = err
					}
					if got++; got == n {
						all.Complete(results)
					}
				})
			})
		}); err != nil {
			return c.failf("%v", err)
		}
		stops[i] = <-ready
	}
	stop.AddCallback(func() {
		for _, s := range stops {
			s.CompleteFrom(ad.Void{})
		}
	})
	if _, err := ad.WaitFor(all); err != nil {
		return c.failf("%v", err)
	}
	if firstErr != nil {
		return c.failf("%v", firstErr)
	}
	res := merge(results)
	if res.Stopped {
		fmt.Fprintln(stdout, "interrupted: the numbers cover the run so far")
	}
	fmt.Fprintf(stdout, "connections %d  messages %s in %.2fs  %s msg/s  %.2f MB/s each way\n",
		res.Conns, count(res.Messages), res.Elapsed.Seconds(), count(int64(res.rate)),
		res.rate*float64(*size)/1e6)
	if n > 1 {
		for i, r := range results {
			fmt.Fprintf(stdout, "  loop %d: connections %d  messages %s  %s msg/s\n", i, r.Conns, count(r.Messages), count(int64(r.Rate())))
		}
	}
	fmt.Fprintf(stdout, "latency (send to last echoed byte), %s:\n", pluralCount(res.Latency.Count(), "message"))
	res.Latency.Fprint(stdout)
	fmt.Fprintf(stdout, "errors %d  mismatches %d  bytes checked %s\n", res.Errors, res.Mismatches, count(res.BytesChecked))
	if !res.OK() {
		return c.failf("%v", res.FirstError)
	}
	return 0
}

// merged is the loops' results added up: rate is the sum of the loops'
// rates (their measured windows are nearly the same; Elapsed is the
// longest).
type merged struct {
	echoload.Result
	rate float64
}

func merge(rs []*echoload.Result) *merged {
	m := &merged{}
	for _, r := range rs {
		m.Conns += r.Conns
		m.Messages += r.Messages
		m.Elapsed = max(m.Elapsed, r.Elapsed)
		m.Latency.Merge(&r.Latency)
		m.BytesChecked += r.BytesChecked
		m.Mismatches += r.Mismatches
		m.Errors += r.Errors
		if m.FirstError == nil {
			m.FirstError = r.FirstError
		}
		m.Stopped = m.Stopped || r.Stopped
		m.rate += r.Rate()
	}
	return m
}

// progressAgg prints one progress line once every loop has reported its
// k-th snapshot: connections, messages and rates added up, latency
// quantiles of the worst loop. It runs on the command's dispatcher.
type progressAgg struct {
	n     int
	quiet bool
	w     io.Writer
	rows  map[int][]echoload.Progress // by k
	k     []int                       // per loop, snapshots so far
}

func (a *progressAgg) add(loop int, p echoload.Progress) {
	if a.rows == nil {
		a.rows = map[int][]echoload.Progress{}
		a.k = make([]int, a.n)
	}
	k := a.k[loop]
	a.k[loop]++
	row := append(a.rows[k], p)
	a.rows[k] = row
	if len(row) < a.n {
		return
	}
	delete(a.rows, k)
	if a.quiet {
		return
	}
	var t echoload.Progress
	for _, p := range row {
		t.Elapsed = max(t.Elapsed, p.Elapsed)
		t.Warmup = t.Warmup || p.Warmup
		t.Conns += p.Conns
		t.Messages += p.Messages
		t.Rate += p.Rate
		t.Avg += p.Avg
		t.P50 = max(t.P50, p.P50)
		t.P99 = max(t.P99, p.P99)
	}
	if t.Warmup {
		fmt.Fprintf(a.w, "%5.1fs  warming up  conns %d  %s msg/s\n", t.Elapsed.Seconds(), t.Conns, count(int64(t.Rate)))
		return
	}
	fmt.Fprintf(a.w, "%5.1fs  conns %d  msgs %s  %s msg/s (avg %s)  p50 %v  p99 %v\n",
		t.Elapsed.Seconds(), t.Conns, count(t.Messages), count(int64(t.Rate)), count(int64(t.Avg)),
		hist.Round(t.P50), hist.Round(t.P99))
}
