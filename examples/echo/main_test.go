package main

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// lineWriter hands each line written to it to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l != "" {
			w <- strings.TrimSuffix(l, "\n")
		}
	}
	return len(p), nil
}

func TestEcho(t *testing.T) {
	lines := make(lineWriter, 100)
	done := make(chan error, 1)
	go func() { done <- run("127.0.0.1:0", lines) }()
	addr := strings.TrimPrefix(<-lines, "echo: listening on ")

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
	// Ctrl-C: the server's AddSignal handler closes the dispatcher.
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
