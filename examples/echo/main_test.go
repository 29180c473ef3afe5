package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/mainrun"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestEcho(t *testing.T) {
	// Ctrl-C when the test ends: the server's AddSignal handler closes
	// the dispatcher, and run must return nil.
	out := mainrun.Serve(t, func(w io.Writer) error { return run("127.0.0.1:0", w) })
	addr := strings.TrimPrefix(out.WaitLine(t, "echo: listening on "), "echo: listening on ")

	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for _, msg := range []string{"hello\n", strings.Repeat("x", 10000)} {
			c.Write([]byte(msg))
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
			}
		}
		c.Close()
	}
}
