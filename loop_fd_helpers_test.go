package asyncdispatch_test

import (
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// pipe is a non-blocking pipe registered with a dispatcher, for fd tests
// that need no network.
type pipe struct{ r, w ad.AsyncFD }

func newPipe(t testing.TB, d *ad.Dispatcher) *pipe {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	p := &pipe{ad.AsyncFD(fds[0]), ad.AsyncFD(fds[1])}
	if err := d.Register(p.r); err != nil {
		t.Fatal(err)
	}
	if err := d.Register(p.w); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Unregister(p.r)
		d.Unregister(p.w)
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return p
}

func (p *pipe) write(t testing.TB) {
	t.Helper()
	if _, err := unix.Write(int(p.w), []byte{1}); err != nil {
		t.Fatal(err)
	}
}

func (p *pipe) drain() {
	var buf [256]byte
	for {
		if n, _ := unix.Read(int(p.r), buf[:]); n <= 0 {
			return
		}
	}
}
