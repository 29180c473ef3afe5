package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/mainrun"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// start runs the server until the test ends (Ctrl-C then) and returns its
// address.
func start(t *testing.T, idle time.Duration) string {
	out := mainrun.Serve(t, func(w io.Writer) error { return run("127.0.0.1:0", idle, w) })
	return strings.TrimPrefix(out.WaitLine(t, "chat: listening on "), "chat: listening on ")
}

type user struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func join(t *testing.T, addr, name string) *user {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	u := &user{t, c, bufio.NewReader(c)}
	u.expect("welcome, " + name)
	return u
}

func (u *user) say(line string) {
	if _, err := u.c.Write([]byte(line + "\n")); err != nil {
		u.t.Fatal(err)
	}
}

func (u *user) expect(line string) {
	u.t.Helper()
	got, err := u.r.ReadString('\n')
	if err != nil || got != line+"\n" {
		u.t.Fatalf("got %q, %v; want %q", got, err, line)
	}
}

// expectEOF waits for the server to drop the client: the end of the
// stream, or a reset when the server closed with bytes of ours unread.
func (u *user) expectEOF() {
	u.t.Helper()
	rest, err := io.ReadAll(u.r)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	if err != nil || len(rest) > 0 {
		u.t.Fatalf("want the end of the stream, got %q, %v", rest, err)
	}
}

func TestChat(t *testing.T) {
	addr := start(t, time.Minute)
	a := join(t, addr, "guest1")
	b := join(t, addr, "guest2")
	a.expect("guest2 joined")
	c := join(t, addr, "guest3")
	a.expect("guest3 joined")
	b.expect("guest3 joined")

	a.say("hello")
	b.expect("guest1: hello")
	c.expect("guest1: hello")
	b.say("hi")
	a.expect("guest2: hi") // and not its own line before it
	c.expect("guest2: hi")

	// A line longer than maxLine gets its sender dropped.
	c.c.Write([]byte(strings.Repeat("x", maxLine+1)))
	c.expectEOF()
	a.expect("guest3 sent a line too long")
	b.expect("guest3 sent a line too long")

	b.c.Close()
	a.expect("guest2 left")
}

// A client that does not read while others talk fills its queue and is
// dropped; the others are not slowed down.
func TestChatSlowClient(t *testing.T) {
	addr := start(t, time.Minute)
	a := join(t, addr, "guest1")
	b := join(t, addr, "guest2")
	a.expect("guest2 joined")
	b.c.(*net.TCPConn).SetReadBuffer(4096) // and b reads nothing from now on

	// A talks until it hears that b was dropped: the kernel's socket
	// buffers take a few megabytes, then b's queue fills.
	line := strings.Repeat("y", 1000) + "\n"
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.c.Write([]byte(line)); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	a.expect("guest2 was too slow")
}

func TestChatIdle(t *testing.T) {
	const idle = 100 * time.Millisecond
	addr := start(t, idle)
	// Taken before the server can arm the client's first idle timeout:
	// taken after join, a test goroutine descheduled for a while would
	// measure less than the server waited.
	t0 := time.Now()
	a := join(t, addr, "guest1")
	a.expectEOF()
	if el := time.Since(t0); el < idle {
		t.Fatalf("dropped after %v, before the idle timeout %v", el, idle)
	}
}
