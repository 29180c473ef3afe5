//go:build linux

package faults

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// socket makes one socket(2) through internal/sys and reports its error.
func socket(t *testing.T) unix.Errno {
	t.Helper()
	fd, err := sys.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err.(unix.Errno)
	}
	unix.Close(fd)
	return 0
}

// Skip, Every and Limit select the calls a rule acts on; the first rule
// that acts wins, every rule counts; without an Injector, or after the
// test, calls are real.
func TestRuleSelection(t *testing.T) {
	t.Run("rules", func(t *testing.T) {
		in := Install(t)
		r := in.Add(&Rule{Op: Socket, Skip: 1, Every: 2, Limit: 2, Err: unix.EMFILE})
		var got []unix.Errno
		for i := 0; i < 7; i++ {
			got = append(got, socket(t))
		}
		want := []unix.Errno{0, 0, unix.EMFILE, 0, unix.EMFILE, 0, 0}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("calls: %v, want %v", got, want)
			}
		}
		if r.Seen() != 7 || r.Acted() != 2 || in.Injected(Socket) != 2 || in.Calls(Socket) != 7 {
			t.Fatalf("seen %d acted %d injected %d calls %d", r.Seen(), r.Acted(), in.Injected(Socket), in.Calls(Socket))
		}
		// A pass-through rule first shields the calls it acts on.
		in.Reset()
		pass := in.Add(&Rule{Op: Socket, Every: 2})
		fail := in.Add(&Rule{Op: Socket, Err: unix.ENFILE})
		got = got[:0]
		for i := 0; i < 4; i++ {
			got = append(got, socket(t))
		}
		if got[0] != unix.ENFILE || got[1] != 0 || got[2] != unix.ENFILE || got[3] != 0 || pass.Seen() != 4 || fail.Seen() != 4 {
			t.Fatalf("pass-through then fail: %v", got)
		}
		// A descriptor filter never selects socket(2), which has none.
		in.Reset()
		in.Add(&Rule{Op: Socket, FDs: []int{3}, Err: unix.EMFILE})
		if e := socket(t); e != 0 {
			t.Fatalf("fd-filtered rule hit socket(2): %v", e)
		}
	})
	if e := socket(t); e != 0 {
		t.Fatalf("after the test: %v", e)
	}
}

// Short makes a partial transfer; Real lets connect(2) start before the
// error is reported.
func TestShortAndReal(t *testing.T) {
	in := Install(t)
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	in.Add(&Rule{Op: Send, FDs: []int{p[0]}, Limit: 1, Short: 3})
	if n, err := sys.SendTo(p[0], []byte("abcdef"), unix.MSG_NOSIGNAL, nil, 0); n != 3 || err != nil {
		t.Fatalf("short send: %d, %v", n, err)
	}
	buf := make([]byte, 10)
	in.Add(&Rule{Op: Recv, FDs: []int{p[1]}, Limit: 1, Short: 2})
	if n, err := sys.RecvFrom(p[1], buf, 0, nil, nil); n != 2 || err != nil || string(buf[:2]) != "ab" {
		t.Fatalf("short recv: %d, %v, %q", n, err, buf[:n])
	}
	if n, _ := sys.RecvFrom(p[1], buf, 0, nil, nil); string(buf[:n]) != "c" {
		t.Fatalf("rest: %q", buf[:n])
	}

	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	unix.Listen(ln, 1)
	sa, _ := unix.Getsockname(ln)
	c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(c)
	in.Add(&Rule{Op: Connect, Err: unix.EINTR, Real: true})
	if err := sys.Connect(c, sa); err != unix.EINTR {
		t.Fatalf("connect: %v", err)
	}
	// The attempt went on in the kernel: the socket connects.
	fds := []unix.PollFd{{Fd: int32(c), Events: unix.POLLOUT}}
	unix.Poll(fds, 5000)
	if _, err := unix.Getpeername(c); err != nil {
		t.Fatalf("connect interrupted by the injector did not go on: %v", err)
	}
}
