package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/mainrun"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// background runs the command on a goroutine; wait returns its exit code.
func background(ctx context.Context, args ...string) (out, errOut *mainrun.Output, wait func() int) {
	out, errOut = mainrun.NewOutput(), mainrun.NewOutput()
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, out, errOut) }()
	return out, errOut, func() int {
		select {
		case c := <-code:
			return c
		case <-time.After(mainrun.Wait):
			panic("command did not exit: " + strings.Join(args, " "))
		}
	}
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsageAndBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"demo", "-duration", "soon"}, 2, "invalid value"},
		{[]string{"demo", "-conns", "0"}, 2, "connections must be at least 1"},
		{[]string{"demo", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve"}, 2, "echo or http"},
		{[]string{"serve", "ftp"}, 2, `unknown server "ftp"`},
		{[]string{"serve", "--addr", "127.0.0.1:0", "echo"}, 2, "before any flag"},
		{[]string{"serve", "http", "--idle-timeout", "-1s"}, 2, "must not be negative"},
		{[]string{"serve", "http", "--max-body", "-1"}, 2, "--max-body"},
		{[]string{"serve", "http", "--addr", "nocolon"}, 2, "missing port"},
		{[]string{"bench", "--conns", "1"}, 2, `unknown benchmark "--conns"`},
		{[]string{"serve", "echo", "--idle-timeout", "-1s"}, 2, "must not be negative"},
		{[]string{"serve", "http", "--max-header", "10"}, 2, "--max-header"},
		{[]string{"serve", "echo", "--addr", "127.0.0.1:notaport"}, 2, "port must be a number"},
		{[]string{"serve", "echo", "--addr", "127.0.0.1:99999"}, 2, "port must be a number"},
		{[]string{"serve", "echo", "--addr", "nocolon"}, 2, "missing port"},
		{[]string{"bench"}, 2, "only echo"},
		{[]string{"bench", "http"}, 2, `unknown benchmark "http"`},
		{[]string{"bench", "echo", "--addr", "10.1.2.3:7"}, 2, "loopback"},
		{[]string{"bench", "echo", "--addr", "example.com:7"}, 2, "loopback"},
		{[]string{"bench", "echo", "--conns", "0"}, 2, "connections"},
		{[]string{"bench", "echo", "--size", "0"}, 2, "size"},
		{[]string{"bench", "echo", "--duration", "0s"}, 2, "duration"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"demo", "--help"}, {"serve", "--help"}, {"serve", "http", "-h"},
		{"serve", "echo", "--help"}, {"bench", "--help"}, {"bench", "echo", "--help"},
	} {
		code, stdout, stderr := runCmd(args...)
		if code != 0 || !strings.Contains(stdout, "usage: asyncdispatch") || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// Every subcommand has its own flag set: its help page lists exactly its
// flags, none of another subcommand's, and it refuses another's flags.
// (serve used to have one flag set for echo and http, shown merged on
// every help page; bench --help listed no flags at all.)
func TestHelpListsOwnFlags(t *testing.T) {
	common := []string{"-addr", "-idle-timeout", "-cpuprofile"}
	for _, tc := range []struct {
		args      []string
		has, hasn []string
	}{
		{[]string{"serve", "echo", "--help"}, append(common, "-callbacks"), []string{"-max-header", "-max-body"}},
		{[]string{"serve", "http", "--help"}, append(common, "-max-header", "-max-body"), []string{"-callbacks"}},
		{[]string{"serve", "--help"}, []string{"serve echo", "serve http"}, []string{"-addr", "-callbacks", "-max-header"}},
		{[]string{"bench", "--help"}, []string{"bench echo", "-addr", "-conns", "-pipeline", "-size", "-duration", "-warmup", "-quiet"}, nil},
		{[]string{"bench", "echo", "--help"}, []string{"-addr", "-conns", "-pipeline", "-size", "-duration", "-warmup", "-quiet"}, []string{"-idle-timeout"}},
		{[]string{"demo", "--help"}, []string{"-duration", "-conns", "-pipeline", "-size"}, []string{"-addr"}},
	} {
		_, stdout, _ := runCmd(tc.args...)
		for _, s := range tc.has {
			if !strings.Contains(stdout, s) {
				t.Errorf("%q does not mention %s:\n%s", tc.args, s, stdout)
			}
		}
		for _, s := range tc.hasn {
			if strings.Contains(stdout, s) {
				t.Errorf("%q mentions %s, not its own:\n%s", tc.args, s, stdout)
			}
		}
	}
	// A context ended already: should the flag be taken, the server
	// stops at once instead of serving on.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{
		{"serve", "echo", "--addr", "127.0.0.1:0", "--max-header", "1000"},
		{"serve", "echo", "--addr", "127.0.0.1:0", "--max-body", "10"},
		{"serve", "http", "--addr", "127.0.0.1:0", "--callbacks"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ended, args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and an undefined flag", args, code, stderr.String())
		}
	}
}

func TestDemo(t *testing.T) {
	code, stdout, stderr := runCmd("demo", "-duration", "1200ms", "-conns", "20")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"demo: echo server on 127.0.0.1:", "summary: connections=20", "errors=0 mismatches=0"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	// A progress line comes before the end: the progress timer (1 s) is
	// armed before the load's (1.2 s) and fires first even when the loop
	// runs late. Its label is the time it actually fired ("1.0s", or
	// "1.3s" on a loaded machine), so only its form is checked.
	if !progressLine.MatchString(stdout) {
		t.Errorf("no progress line in:\n%s", stdout)
	}
}

var progressLine = regexp.MustCompile(`(?m)^ *\d+\.\ds  conns 20  server conns \d+  msgs [\d,]+  `)

// serve echo, then bench echo against it; both stop when asked.
func TestServeEchoAndBench(t *testing.T) {
	for _, extra := range [][]string{nil, {"--callbacks"}} {
		ctx, cancel := context.WithCancel(context.Background())
		out, _, wait := background(ctx, append([]string{"serve", "echo", "--addr", "127.0.0.1:0"}, extra...)...)
		addr := strings.Fields(out.WaitLine(t, "serving echo on"))[4]

		code, stdout, stderr := runCmd("bench", "echo", "--addr", addr, "--conns", "10", "--pipeline", "4",
			"--duration", "300ms", "--warmup", "100ms", "--quiet")
		if code != 0 || !strings.Contains(stdout, "errors 0  mismatches 0") || !strings.Contains(stdout, "p99.9") {
			t.Fatalf("bench: exit %d\n%s\n%s", code, stdout, stderr)
		}
		cancel()
		if code := wait(); code != 0 {
			t.Fatalf("serve exited %d", code)
		}
		if !strings.Contains(out.String(), "stopped after 10 connections") {
			t.Fatalf("serve output:\n%s", out)
		}
	}
}

func TestServeHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, _, wait := background(ctx, "serve", "http", "--addr", "127.0.0.1:0")
	addr := strings.Fields(out.WaitLine(t, "serving http on"))[4]
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	tr.CloseIdleConnections()
	cancel()
	if code := wait(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

// SIGTERM (and so Ctrl-C's SIGINT) reaches the server through the
// library's AddSignal and it exits cleanly.
func TestServeSignal(t *testing.T) {
	out, _, wait := background(context.Background(), "serve", "echo", "--addr", "127.0.0.1:0")
	out.WaitLine(t, "serving echo on")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}
	out.WaitLine(t, "stopped after 0 connections")
}

// Counts of one are singular wherever the command prints a count in a
// sentence: "stopped after 1 connection" used to read "1 connections".
func TestCountsOfOne(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, _, wait := background(ctx, "serve", "echo", "--addr", "127.0.0.1:0")
	addr := strings.Fields(out.WaitLine(t, "serving echo on"))[4]
	code, stdout, stderr := runCmd("bench", "echo", "--addr", addr, "--conns", "1", "--pipeline", "1", "--size", "1",
		"--duration", "100ms", "--warmup", "0s", "--quiet")
	if code != 0 || !strings.Contains(stdout, "1 connection, 1 message of 1 byte in flight on each") {
		t.Errorf("bench: exit %d\n%s\n%s", code, stdout, stderr)
	}
	cancel()
	if code := wait(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if !strings.Contains(out.String(), "stopped after 1 connection\n") {
		t.Errorf("serve output:\n%s", out)
	}
	code, stdout, stderr = runCmd("demo", "-duration", "100ms", "-conns", "1", "-pipeline", "1", "-size", "1")
	if code != 0 || !strings.Contains(stdout, "1 client, 1 line of 1 byte in flight on each") {
		t.Errorf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, tc := range []struct {
		got, want string
	}{
		{pluralCount(uint64(1), "message"), "1 message"},
		{pluralCount(int64(0), "message"), "0 messages"},
		{pluralCount(1234567, "message"), "1,234,567 messages"},
		{plural(1, "byte"), "1 byte"},
		{plural(2, "byte"), "2 bytes"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

// A port nobody listens on: bench fails with exit 1 and says why.
func TestBenchRefused(t *testing.T) {
	code, _, stderr := runCmd("bench", "echo", "--addr", "127.0.0.1:1", "--duration", "100ms")
	if code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// A port in use is a runtime failure (exit 1), with the reason.
func TestServeAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := runCmd("serve", "http", "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
