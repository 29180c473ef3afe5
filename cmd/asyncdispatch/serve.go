package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/server"
)

// serve runs the echo or the HTTP server until Ctrl-C or SIGTERM.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve", `Serve the echo protocol or HTTP/1.1 on one dispatcher until Ctrl-C.

  asyncdispatch serve echo [flags]   every byte received is sent back
  asyncdispatch serve http [flags]   200 "Hello, World!" (text/plain) to every request;
                                     keep-alive, pipelining, HTTP/1.0, size limits`, stdout, stderr)
	addr := c.fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on (port 0: any free port)")
	idle := c.fs.Duration("idle-timeout", 60*time.Second, "drop a connection idle this long (0: never)")
	callbacks := c.fs.Bool("callbacks", false, "echo: serve with AddRead callbacks instead of an async procedure per connection")
	maxHeader := c.fs.Int("max-header", 8<<10, "http: largest request head in bytes (431 beyond)")
	maxBody := c.fs.Int64("max-body", 1<<20, "http: largest request body in bytes (413 beyond)")
	cpuprofile := c.fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof)")
	kind := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		kind, args = args[0], args[1:]
	}
	if code, ok := c.parse(args); !ok {
		return code
	}
	switch {
	case kind != "echo" && kind != "http":
		if kind == "" {
			return c.fail(fmt.Errorf("what to serve? echo or http"))
		}
		return c.fail(fmt.Errorf("unknown server %q (echo or http)", kind))
	case checkAddr(*addr) != nil:
		return c.fail(fmt.Errorf("--addr %q: %v", *addr, checkAddr(*addr)))
	case *idle < 0:
		return c.fail(fmt.Errorf("--idle-timeout must not be negative"))
	case *maxHeader < 256 || *maxHeader > 1<<20:
		return c.fail(fmt.Errorf("--max-header must be between 256 and 1048576"))
	case *maxBody < 0:
		return c.fail(fmt.Errorf("--max-body must not be negative"))
	}
	c.name = "serve " + kind

	if *cpuprofile != "" {
		stop, err := startProfile(*cpuprofile)
		if err != nil {
			return c.failf("%v", err)
		}
		defer stop()
	}
	d, err := ad.NewDispatcher()
	if err != nil {
		return c.failf("%v", err)
	}
	defer d.Close()
	ln, err := server.Listen(d, *addr)
	if err != nil {
		return c.failf("%v", err)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "asyncdispatch "+c.name+": "+format+"\n", args...)
	}
	var srv *server.Server
	if kind == "echo" {
		srv, err = server.ServeEcho(d, ln, server.EchoConfig{IdleTimeout: *idle, Callbacks: *callbacks, Logf: logf})
	} else {
		body := *maxBody
		if body == 0 {
			body = -1 // no body allowed (0 means the default to HTTPConfig)
		}
		srv, err = server.ServeHTTP(d, ln, server.HTTPConfig{IdleTimeout: *idle, MaxHeader: *maxHeader, MaxBody: body, Logf: logf})
	}
	if err != nil {
		return c.failf("%v", err)
	}
	stop, release, err := stopper(ctx, d)
	if err != nil {
		return c.failf("%v", err)
	}
	defer release()
	fmt.Fprintf(stdout, "asyncdispatch: serving %s on %s (Ctrl-C to stop)\n", kind, srv.Addr())

	_, err = ad.WaitFor(ad.Or(stop, srv.Done()))
	srv.Shutdown()
	if _, err := ad.WaitFor(ad.Timeout(srv.Done(), 5*time.Second)); err != nil && !srv.Done().Failed() {
		fmt.Fprintf(stderr, "asyncdispatch %s: shutdown: %v\n", c.name, err)
	}
	if err != nil {
		return c.failf("%v", err)
	}
	fmt.Fprintf(stdout, "asyncdispatch: stopped after %s connections\n", count(srv.Accepted()))
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
