package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/server"
)

// serveUsage is the page of "serve --help": serve has no flags of its
// own, each server has its own flag set and help page.
const serveUsage = `usage: asyncdispatch serve echo|http [flags]

Serve the echo protocol or HTTP/1.1 until Ctrl-C, on --loops loops (one
per CPU by default), each on its own thread with its own listener.

  asyncdispatch serve echo [flags]   every byte received is sent back
  asyncdispatch serve http [flags]   200 "Hello, World!" (text/plain) to every request;
                                     keep-alive, pipelining, HTTP/1.0, size limits

Run "asyncdispatch serve echo --help" or "asyncdispatch serve http --help"
for the flags of each.
`

// serve runs the echo or the HTTP server until Ctrl-C or SIGTERM.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	group := newCommand("serve", "", stdout, stderr)
	if len(args) == 0 {
		return group.fail(fmt.Errorf("what to serve? echo or http"))
	}
	switch args[0] {
	case "echo":
		return serveEcho(ctx, args[1:], stdout, stderr)
	case "http":
		return serveHTTP(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, serveUsage)
		return 0
	}
	if strings.HasPrefix(args[0], "-") {
		return group.fail(fmt.Errorf("what to serve? echo or http, before any flag"))
	}
	return group.fail(fmt.Errorf("unknown server %q (echo or http)", args[0]))
}

// serverFlags are the flags both servers have.
type serverFlags struct {
	addr       *string
	idle       *time.Duration
	cpuprofile *string
	loops      loopFlags
	stats      *time.Duration
	group      ad.GroupConfig // made by check
}

func addServerFlags(c *command) *serverFlags {
	return &serverFlags{
		addr:       c.fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on (port 0: any free port)"),
		idle:       c.fs.Duration("idle-timeout", 60*time.Second, "drop a connection idle this long (0: never)"),
		cpuprofile: c.fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof; -tagfocus loop=N keeps one loop's samples)"),
		loops:      addLoopFlags(c, defaultLoops(), "server loops, each on its own thread with its own listener (default: one per CPU the process may use)", true),
		stats:      c.fs.Duration("stats", 0, "print every loop's counters at this `interval` (0: only at the end)"),
	}
}

// check checks the flags both servers have.
func (f *serverFlags) check() error {
	if err := checkAddr(*f.addr); err != nil {
		return fmt.Errorf("--addr %q: %v", *f.addr, err)
	}
	if *f.idle < 0 {
		return fmt.Errorf("--idle-timeout must not be negative")
	}
	if *f.stats < 0 {
		return fmt.Errorf("--stats must not be negative")
	}
	var err error
	f.group, err = f.loops.config()
	return err
}

func serveEcho(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve echo", "Serve the echo protocol (every byte received is sent back) until Ctrl-C,\non --loops loops (one per CPU by default).", stdout, stderr)
	f := addServerFlags(c)
	callbacks := c.fs.Bool("callbacks", false, "serve with AddRead callbacks instead of an async procedure per connection")
	if code, ok := c.parse(args); !ok {
		return code
	}
	if err := f.check(); err != nil {
		return c.fail(err)
	}
	return runServer(ctx, c, f, func(d *ad.Dispatcher, ln ad.AsyncFD, logf func(string, ...any)) (*server.Server, error) {
		return server.ServeEcho(d, ln, server.EchoConfig{IdleTimeout: *f.idle, Callbacks: *callbacks, Logf: logf})
	})
}

func serveHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve http", `Serve HTTP/1.1 on --loops loops until Ctrl-C: 200 "Hello, World!"
(text/plain) to every request; keep-alive, pipelining, HTTP/1.0, size limits.`, stdout, stderr)
	f := addServerFlags(c)
	maxHeader := c.fs.Int("max-header", 8<<10, "largest request head in bytes (431 beyond)")
	maxBody := c.fs.Int64("max-body", 1<<20, "largest request body in bytes (413 beyond)")
	if code, ok := c.parse(args); !ok {
		return code
	}
	err := f.check()
	switch {
	case err != nil:
	case *maxHeader < 256 || *maxHeader > 1<<20:
		err = fmt.Errorf("--max-header must be between 256 and 1048576")
	case *maxBody < 0:
		err = fmt.Errorf("--max-body must not be negative")
	}
	if err != nil {
		return c.fail(err)
	}
	body := *maxBody
	if body == 0 {
		body = -1 // no body allowed (0 means the default to HTTPConfig)
	}
	return runServer(ctx, c, f, func(d *ad.Dispatcher, ln ad.AsyncFD, logf func(string, ...any)) (*server.Server, error) {
		return server.ServeHTTP(d, ln, server.HTTPConfig{IdleTimeout: *f.idle, MaxHeader: *maxHeader, MaxBody: body, Logf: logf})
	})
}

// runServer serves with a group of loops — each listening on the address
// (or, with --balance handoff, fed by loop 0) and running its own server —
// until Ctrl-C, SIGTERM, ctx ending or every loop failing; then it shuts
// the group down gracefully (5 s for the connections to finish) and
// reports every loop's counters.
func runServer(ctx context.Context, c *command, f *serverFlags, start func(*ad.Dispatcher, ad.AsyncFD, func(string, ...any)) (*server.Server, error)) int {
	stdout, stderr := &lockedWriter{w: c.stdout}, &lockedWriter{w: c.stderr}
	if *f.cpuprofile != "" {
		stop, err := startProfile(*f.cpuprofile)
		if err != nil {
			return c.failf("%v", err)
		}
		defer stop()
	}
	addr, err := resolve(*f.addr)
	if err != nil {
		return c.failf("%v", err)
	}
	// The command's own dispatcher: signals, the counters' timer.
	d, err := ad.NewDispatcher()
	if err != nil {
		return c.failf("%v", err)
	}
	defer d.Close()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "asyncdispatch "+c.name+": "+format+"\n", args...)
	}
	cfg := f.group
	allDown := ad.NewExternalFuture[ad.Void](d, "every loop failed")
	defer allDown.Cancel()
	var mu sync.Mutex
	down := 0
	cfg.OnFailure = func(lf ad.LoopFailure) {
		logf("%v", lf)
		if !lf.Stopped {
			return
		}
		mu.Lock()
		down++
		all := down == cfg.Loops
		mu.Unlock()
		if all {
			allDown.CompleteFrom(ad.Void{})
		}
	}
	g, err := ad.NewGroup(cfg)
	if err != nil {
		return c.failf("%v", err)
	}
	defer g.Close()
	bound, err := g.Serve("tcp", addr, func(ld *ad.Dispatcher) (ad.Service, error) {
		srv, err := start(ld, ad.InvalidFD, logf)
		if err != nil {
			return nil, err
		}
		return loopServer{srv}, nil
	})
	if err != nil {
		return c.failf("%v", err)
	}
	stop, release, err := stopper(ctx, d)
	if err != nil {
		return c.failf("%v", err)
	}
	defer release()
	kind := strings.TrimPrefix(c.name, "serve ")
	fmt.Fprintf(stdout, "asyncdispatch: serving %s on %s (%s; Ctrl-C to stop)\n", kind, bound, describe(cfg, g.Len(), true))
	began := time.Now()
	if *f.stats > 0 {
		var rep loopReport
		ticker, err := d.AddTimer(*f.stats, false, func(ad.AsyncFD) bool {
			// Off the loop: Stats waits for every loop's answer.
			st := ad.Go(d, func() ([]ad.LoopStats, error) { return g.Stats(context.Background()) })
			st.AddCallback(func() {
				if v, err := st.Read(); err == nil {
					fmt.Fprintf(stdout, "%5.1fs  %s\n", time.Since(began).Seconds(), rep.line(v))
				}
			})
			return false
		})
		if err != nil {
			return c.failf("%v", err)
		}
		defer ticker.Stop()
	}

	_, err = ad.WaitFor(ad.Or(stop, allDown))
	if err == nil && allDown.Finished() {
		err = fmt.Errorf("every loop failed")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := g.Shutdown(sctx); serr != nil && !errors.Is(serr, ad.ErrClosed) {
		fmt.Fprintf(stderr, "asyncdispatch %s: shutdown: %v (connections still open were dropped)\n", c.name, serr)
	}
	st, _ := g.Stats(context.Background())
	if err != nil {
		return c.failf("%v", err)
	}
	summary(stdout, st, time.Since(began))
	fmt.Fprintf(stdout, "asyncdispatch: stopped after %s\n", pluralCount(servedTotal(st), "connection"))
	return 0
}

// checkAddr checks the form of a listening address: host:port with a
// port between 0 and 65535 (the host is resolved later).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port must be a number between 0 and 65535")
	}
	return nil
}
