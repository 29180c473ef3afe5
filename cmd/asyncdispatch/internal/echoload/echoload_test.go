package echoload

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/server"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// runAgainst runs a load against a server started by serve on the same
// dispatcher, then stops the server.
func runAgainst(t *testing.T, cfg Config, serve func(d *ad.Dispatcher, ln ad.AsyncFD) (string, func())) *Result {
	t.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ln, err := d.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(d, ln)
	cfg.Addr = addr
	res, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*Result, error) { return Run(co, d, cfg) }))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	return res
}

func echoServer(t *testing.T) func(d *ad.Dispatcher, ln ad.AsyncFD) (string, func()) {
	return func(d *ad.Dispatcher, ln ad.AsyncFD) (string, func()) {
		srv, err := server.ServeEcho(d, ln, server.EchoConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return srv.Addr(), func() {
			srv.Shutdown()
			if _, err := ad.WaitFor(srv.Done()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRun(t *testing.T) {
	var ticks []Progress
	cfg := Config{Conns: 20, Pipeline: 3, Size: 100, Warmup: 60 * time.Millisecond, Duration: 150 * time.Millisecond,
		Interval: 40 * time.Millisecond, Progress: func(p Progress) { ticks = append(ticks, p) }}
	res := runAgainst(t, cfg, echoServer(t))
	if !res.OK() || res.Conns != 20 || res.Messages == 0 || res.Latency.Count() != res.Messages {
		t.Fatalf("result %+v", res)
	}
	// Every byte sent was checked: the drain waited for the last echoes.
	if res.BytesChecked%100 != 0 || res.BytesChecked < res.Messages*100 {
		t.Fatalf("%d bytes checked for %d messages", res.BytesChecked, res.Messages)
	}
	if res.Elapsed < cfg.Duration || res.Elapsed > cfg.Duration+time.Second {
		t.Fatalf("measured for %v, want about %v", res.Elapsed, cfg.Duration)
	}
	if len(ticks) < 2 || !ticks[0].Warmup || ticks[len(ticks)-1].Warmup || ticks[len(ticks)-1].Conns != 20 {
		t.Fatalf("progress: %+v", ticks)
	}
}

// An echo that differs is caught; the run still ends cleanly.
func TestRunMismatch(t *testing.T) {
	corrupt := func(d *ad.Dispatcher, ln ad.AsyncFD) (string, func()) {
		addr, _ := server.AddrOf(ln)
		serve := func(co *ad.Coro, fd ad.AsyncFD) (ad.Void, error) {
			defer d.CloseSocket(fd)
			buf := make([]byte, 4096)
			total := 0
			for {
				n, err := ad.Await(co, d.RecvInto(fd, buf, ad.DefaultFlags))
				if err != nil || n == 0 {
					return ad.Void{}, nil
				}
				for i := range n {
					if total+i == 1000 {
						buf[i] ^= 1
					}
				}
				total += n
				if _, err := ad.Await(co, d.Send(fd, buf[:n], ad.DefaultFlags)); err != nil {
					return ad.Void{}, nil
				}
			}
		}
		accept := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
			if err != nil {
				return ad.Void{}, err
			}
			return serve(co, fd)
		})
		return addr, func() { d.CloseSocket(ln); ad.WaitFor(accept) }
	}
	res := runAgainst(t, Config{Conns: 1, Pipeline: 2, Size: 64, Duration: 100 * time.Millisecond}, corrupt)
	if res.Mismatches != 1 || res.OK() || !strings.Contains(res.FirstError.Error(), "mismatch at byte 1000") {
		t.Fatalf("result %+v", res)
	}
}

// Stop ends the run early; a refused connection is an error, not a hang.
func TestRunStopAndRefused(t *testing.T) {
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stop := ad.NewFuture[ad.Void](d, "stop")
	d.AddTimer(50*time.Millisecond, true, func(ad.AsyncFD) bool { stop.Complete(ad.Void{}); return true })
	ln, _ := d.Listen("tcp", "127.0.0.1:0")
	srv, _ := server.ServeEcho(d, ln, server.EchoConfig{})
	cfg := Config{Addr: srv.Addr(), Conns: 5, Pipeline: 1, Size: 10, Duration: time.Hour, Stop: stop}
	res, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*Result, error) { return Run(co, d, cfg) }))
	if err != nil || !res.Stopped || !res.OK() {
		t.Fatalf("%+v %v", res, err)
	}
	// Stopped before it could connect: nothing is left behind.
	res, err = ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*Result, error) { return Run(co, d, cfg) }))
	if err != nil || !res.Stopped || res.Conns != 0 || res.Errors != 0 {
		t.Fatalf("stopped at once: %+v %v", res, err)
	}
	srv.Shutdown()
	ad.WaitFor(srv.Done())

	// The listener is closed now: nobody listens on the port.
	cfg.Stop = nil
	_, err = ad.WaitFor(ad.Async(d, func(co *ad.Coro) (*Result, error) { return Run(co, d, cfg) }))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("against a closed port: %v", err)
	}
}

func TestCheck(t *testing.T) {
	good := Config{Addr: "127.0.0.1:1", Conns: 1, Pipeline: 1, Size: 1, Duration: time.Second}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Conns = 0 },
		func(c *Config) { c.Pipeline = 0 },
		func(c *Config) { c.Pipeline = MaxPipeline + 1 },
		func(c *Config) { c.Size = 0 },
		func(c *Config) { c.Size = MaxSize + 1 },
		func(c *Config) { c.Size, c.Pipeline = MaxSize, 17 },
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.Warmup = -1 },
		func(c *Config) { c.Addr = "localhost:1" },
	} {
		c := good
		mod(&c)
		if c.Check() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:80":         "127.0.0.1:80",
		"127.1.2.3:80":         "127.1.2.3:80",
		"localhost:8080":       "127.0.0.1:8080",
		"[::1]:80":             "[::1]:80",
		"[::ffff:127.0.0.1]:9": "127.0.0.1:9",
		"10.0.0.1:80":          "",
		"192.168.1.1:80":       "",
		"[::]:80":              "",
		"0.0.0.0:80":           "",
		"example.com:80":       "",
		"127.0.0.1":            "",
		"127.0.0.1:0":          "",
		"127.0.0.1:99999":      "",
	} {
		got, err := CheckLoopback(addr)
		if want == "" && err == nil || want != "" && (err != nil || got != want) {
			t.Errorf("CheckLoopback(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
