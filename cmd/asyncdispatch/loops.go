package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/server"
)

// What the commands that run several loops (an ad.Group) share: the
// flags, the adapter that makes a server of internal/server a loop's
// service, and the counters' report. The loops run on goroutines of
// their own; the command's main goroutine keeps one dispatcher of its own
// (signals, timers, the report), and what the loops write to the
// command's output goes through a lock.

// loopFlags are --loops, --pin and (serve, demo) --balance.
type loopFlags struct {
	loops   *int
	pin     *bool
	balance *string
}

func addLoopFlags(c *command, defLoops int, usage string, withBalance bool) loopFlags {
	f := loopFlags{
		loops: c.fs.Int("loops", defLoops, usage),
		pin:   c.fs.Bool("pin", false, "pin loop i to the i-th CPU the process may use (sched_setaffinity)"),
	}
	if withBalance {
		f.balance = c.fs.String("balance", "reuseport", "how connections reach the loops: `reuseport` (each loop listens, SO_REUSEPORT), handoff (loop 0 accepts and hands round-robin) or cpu (SO_INCOMING_CPU, needs --pin)")
	}
	return f
}

// config checks the flags and makes the group's configuration.
func (f loopFlags) config() (ad.GroupConfig, error) {
	cfg := ad.GroupConfig{Loops: *f.loops, Pin: *f.pin}
	if cfg.Loops < 1 || cfg.Loops > ad.MaxLoops {
		return cfg, fmt.Errorf("--loops must be between 1 and %d", ad.MaxLoops)
	}
	if f.balance != nil {
		b, err := ad.ParseBalance(*f.balance)
		if err != nil {
			return cfg, fmt.Errorf("--balance %q: want reuseport, handoff or cpu", *f.balance)
		}
		if b == ad.BalanceCPU && !cfg.Pin {
			return cfg, fmt.Errorf("--balance cpu needs --pin")
		}
		cfg.Balance = b
	}
	return cfg, nil
}

func defaultLoops() int { return runtime.GOMAXPROCS(0) }

// describe is "2 loops, reuseport" (or "1 loop"; the balance only for a
// server).
func describe(cfg ad.GroupConfig, n int, server bool) string {
	s := plural(n, "loop")
	if n > 1 && server {
		s += ", " + cfg.Balance.String()
	}
	if cfg.Pin {
		s += ", pinned"
	}
	return s
}

// loopServer is a server of internal/server as a loop's ad.Service: the
// group accepts, the server serves.
type loopServer struct{ *server.Server }

func (s loopServer) ServeConn(fd ad.AsyncFD) { s.Adopt(fd) }

func (s loopServer) Shutdown(graceful bool) {
	if graceful {
		s.Drain()
	} else {
		s.Server.Shutdown()
	}
}

// resolve makes addr's host an IP literal (Serve does not resolve names;
// this runs before any loop does, so blocking is fine).
func resolve(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if host == "" || net.ParseIP(host) != nil {
		return addr, nil
	}
	ips, err := net.DefaultResolver.LookupHost(context.Background(), host)
	if err != nil {
		return "", err
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("%s: no address", host)
	}
	return net.JoinHostPort(ips[0], port), nil
}

// lockedWriter serialises the writes of several loops.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// loopReport turns successive counter snapshots into per-loop lines.
type loopReport struct {
	prev []ad.LoopStats
	at   time.Time
}

// line is one line with every loop's counters now and their rates since
// the last call: "[0] conns 98 ops/s 123,456 busy 45%  [1] …".
func (r *loopReport) line(st []ad.LoopStats) string {
	now := time.Now()
	var b strings.Builder
	for i, s := range st {
		if i > 0 {
			b.WriteString("  ")
		}
		open := int64(s.Accepted) - int64(s.Closed)
		fmt.Fprintf(&b, "[%d] conns %d", s.Loop, max(open, 0))
		if r.prev != nil && i < len(r.prev) {
			dt := now.Sub(r.at).Seconds()
			p := r.prev[i]
			fmt.Fprintf(&b, " ops/s %s busy %d%%", count(int64(float64(s.Operations-p.Operations)/dt)),
				int(100*(s.Busy-p.Busy).Seconds()/dt+0.5))
		}
		if s.Stopped {
			b.WriteString(" stopped")
		}
	}
	r.prev, r.at = st, now
	return b.String()
}

// summary prints one line per loop: connections served, operations and
// rounds (poller waits: operations per round is how much each wait
// batches), busy time over the run.
func summary(w io.Writer, st []ad.LoopStats, wall time.Duration) {
	for _, s := range st {
		cpu := ""
		if s.CPU >= 0 {
			cpu = fmt.Sprintf(" (cpu %d)", s.CPU)
		}
		perRound := 0.0
		if s.Rounds > 0 {
			perRound = float64(s.Operations) / float64(s.Rounds)
		}
		fmt.Fprintf(w, "  loop %d%s: %s served, %s in %s (%.1f per round), busy %.2fs (%d%% of %.1fs)", s.Loop, cpu,
			pluralCount(s.Served, "connection"), pluralCount(s.Operations, "operation"), pluralCount(s.Rounds, "round"), perRound,
			s.Busy.Seconds(), int(100*s.Busy.Seconds()/wall.Seconds()+0.5), wall.Seconds())
		if s.Failures > 0 {
			fmt.Fprintf(w, ", %s", plural(s.Failures, "failure"))
		}
		fmt.Fprintln(w)
	}
}

// servedTotal is the number of connections the loops served.
func servedTotal(st []ad.LoopStats) uint64 {
	var n uint64
	for _, s := range st {
		n += s.Served
	}
	return n
}
