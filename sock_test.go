package asyncdispatch_test

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func TestCreateAsyncNativeSocket(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		fd, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_TCP, false)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Contains(fd) {
			t.Fatal("socket not registered")
		}
		if d.HasPendingOperations() || d.ActiveDescriptors() != 0 {
			t.Fatal("an idle socket counts as pending")
		}
		fl, fdfl := fdFlags(t, fd)
		if fl&unix.O_NONBLOCK == 0 || fdfl&unix.FD_CLOEXEC == 0 {
			t.Fatalf("flags %#x fd flags %#x: want O_NONBLOCK and FD_CLOEXEC", fl, fdfl)
		}
		inh, err := d.CreateAsyncNativeSocket(unix.AF_INET6, unix.SOCK_DGRAM, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, fdfl := fdFlags(t, inh); fdfl&unix.FD_CLOEXEC != 0 {
			t.Fatal("inheritable socket is close-on-exec")
		}
		if err := ad.SetInheritable(inh, false); err != nil {
			t.Fatal(err)
		}
		if _, fdfl := fdFlags(t, inh); fdfl&unix.FD_CLOEXEC == 0 {
			t.Fatal("SetInheritable(false) left the socket inheritable")
		}
		// A failure is an error, not -1 (Nim).
		if fd, err := d.CreateAsyncNativeSocket(12345, unix.SOCK_STREAM, 0, false); err == nil || fd != ad.InvalidFD {
			t.Fatalf("bad domain: %v, %v", fd, err)
		} else if !errors.Is(err, unix.EAFNOSUPPORT) {
			t.Fatalf("bad domain: %v, want EAFNOSUPPORT", err)
		}
		if err := d.CloseSocket(fd); err != nil {
			t.Fatal(err)
		}
		if isOpen(fd) && d.Contains(fd) {
			t.Fatal("CloseSocket left the socket")
		}
		// Dispatcher Close closes the sockets it owns.
		d.Close()
		if isOpen(inh) {
			t.Fatal("Close left an owned socket open")
		}
		if _, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
}

func TestCloseSocketTwiceAndUnknown(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		fd, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.CloseSocket(fd); err != nil {
			t.Fatal(err)
		}
		if err := d.CloseSocket(fd); !errors.Is(err, ad.ErrNotRegistered) {
			t.Fatalf("second CloseSocket: %v, want ErrNotRegistered", err)
		}
		for _, bad := range []ad.AsyncFD{-1, 1 << 20, 0} {
			if err := d.CloseSocket(bad); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("CloseSocket(%d): %v, want ErrNotRegistered", bad, err)
			}
		}
		if !isOpen(0) {
			t.Fatal("CloseSocket of an unregistered fd closed it")
		}
	})
}

func TestRecvSendBasics(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		// Try first: a send the socket takes completes on return, and so
		// does a receive of data already there.
		f := d.SendString(c, "hello", ad.DefaultFlags)
		if !f.Finished() {
			t.Fatal("a small send did not complete synchronously")
		}
		got := wait(t, d.Recv(s, 100, ad.DefaultFlags))
		if string(got) != "hello" {
			t.Fatalf("Recv: %q", got)
		}
		// Recv returns what is available, fewer bytes than asked.
		wait(t, d.Send(c, []byte("abcdef"), ad.DefaultFlags))
		if got := wait(t, d.Recv(s, 3, ad.DefaultFlags)); string(got) != "abc" {
			t.Fatalf("Recv(3): %q", got)
		}
		// Peek does not consume.
		if got := wait(t, d.RecvString(s, 10, ad.DefaultFlags|ad.Peek)); got != "def" {
			t.Fatalf("peek: %q", got)
		}
		buf := make([]byte, 10)
		if n := wait(t, d.RecvInto(s, buf, ad.DefaultFlags)); string(buf[:n]) != "def" {
			t.Fatalf("RecvInto: %q", buf[:n])
		}
		// A pending receive completes when data comes.
		rf := d.RecvString(s, 10, ad.DefaultFlags)
		if rf.Finished() {
			t.Fatal("Recv finished with no data")
		}
		if d.ActiveDescriptors() != 1 || !d.HasPendingOperations() {
			t.Fatalf("pending recv: ActiveDescriptors %d", d.ActiveDescriptors())
		}
		d.SendString(c, "late", ad.DefaultFlags)
		if got := wait(t, rf); got != "late" {
			t.Fatalf("pending Recv: %q", got)
		}
		if d.ActiveDescriptors() != 0 {
			t.Fatalf("ActiveDescriptors %d after the recv, want 0", d.ActiveDescriptors())
		}
		// End of file: empty, every time, with and without SafeDisconn.
		if err := d.CloseSocket(c); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if got := wait(t, d.Recv(s, 10, 0)); len(got) != 0 || got == nil {
				t.Fatalf("Recv at EOF %d: %q (nil %v)", i, got, got == nil)
			}
			if n := wait(t, d.RecvInto(s, buf, ad.DefaultFlags)); n != 0 {
				t.Fatalf("RecvInto at EOF: %d", n)
			}
			if got := wait(t, d.RecvString(s, 10, ad.DefaultFlags)); got != "" {
				t.Fatalf("RecvString at EOF: %q", got)
			}
		}
		// An empty send completes without a syscall.
		if f := d.Send(s, nil, ad.DefaultFlags); !f.Finished() || f.Failed() {
			t.Fatalf("empty send: %v", f)
		}
	})
}

func TestSocketArgumentErrors(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, _ := connPair(t, d)
		if err := waitErr(t, d.Recv(c, -1, 0)); !errors.Is(err, ad.ErrNegative) {
			t.Fatalf("Recv(-1): %v", err)
		}
		if err := waitErr(t, d.RecvString(c, -5, 0)); !errors.Is(err, ad.ErrNegative) {
			t.Fatalf("RecvString(-5): %v", err)
		}
		if err := waitErr(t, d.RecvInto(c, nil, 0)); !errors.Is(err, ad.ErrNilBuffer) {
			t.Fatalf("RecvInto(nil): %v", err)
		}
		if err := waitErr(t, d.RecvFromInto(c, nil, 0)); !errors.Is(err, ad.ErrNilBuffer) {
			t.Fatalf("RecvFromInto(nil): %v", err)
		}
		// Unknown and closed descriptors.
		d.CloseSocket(c)
		for _, fd := range []ad.AsyncFD{c, -1, 99999} {
			if err := waitErr(t, d.Recv(fd, 10, 0)); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("Recv(%d): %v", fd, err)
			}
			if err := waitErr(t, d.SendString(fd, "x", 0)); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("Send(%d): %v", fd, err)
			}
			if err := waitErr(t, d.Accept(fd, 0, false)); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("Accept(%d): %v", fd, err)
			}
			if err := waitErr(t, d.Connect(fd, "127.0.0.1", 1, unix.AF_INET)); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("Connect(%d): %v", fd, err)
			}
		}
		if err := waitErr(t, d.Dial("127.0.0.1", 70000, unix.IPPROTO_TCP)); !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("Dial port 70000: %v", err)
		}
		// A system error is an *os.SyscallError with the errno.
		udp, _ := listen(t, d, "udp4", "127.0.0.1:0")
		err := waitErr(t, d.Accept(udp, 0, false))
		var se *os.SyscallError
		if !errors.As(err, &se) || !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatalf("accept on UDP: %v, want an *os.SyscallError with EOPNOTSUPP", err)
		}
		d.CloseSocket(udp)
		// After Close everything fails with ErrClosed.
		d.Close()
		if err := waitErr(t, d.Recv(3, 10, 0)); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("Recv after Close: %v", err)
		}
		if err := waitErr(t, d.Dial("127.0.0.1", 1, unix.IPPROTO_TCP)); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("Dial after Close: %v", err)
		}
	})
}

func TestSendOrderAndPartialWrites(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		// Small fixed buffers (no autotuning), so the sends hit EAGAIN.
		unix.SetsockoptInt(int(c), unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10)
		unix.SetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10)
		// Hundreds of numbered frames, issued back to back without
		// awaiting: they go out whole and in order, and their futures
		// complete in order (Nim's tasynceagain shape).
		const frames, size = 400, 9999
		var want bytes.Buffer
		var order []int
		var futs []*ad.Future[ad.Void]
		for i := 0; i < frames; i++ {
			fr := frame(i, size)
			want.Write(fr)
			f := d.Send(c, fr, ad.DefaultFlags)
			f.AddCallback(func() { order = append(order, i) })
			futs = append(futs, f)
		}
		if futs[frames-1].Finished() {
			t.Fatal("the socket took 4 MB at once; the test needs EAGAIN")
		}
		got := wait(t, async(d, func(co *ad.Coro) ([]byte, error) {
			var b []byte
			buf := make([]byte, 7777)
			for len(b) < frames*size {
				n, err := ad.Await(co, d.RecvInto(s, buf, ad.DefaultFlags))
				if err != nil || n == 0 {
					return b, err
				}
				b = append(b, buf[:n]...)
			}
			return b, nil
		}))
		wait(t, ad.All(futs...))
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("received %d bytes, not the %d sent in order", len(got), want.Len())
		}
		for i, v := range order {
			if v != i {
				t.Fatalf("send futures completed out of order: %v...", order[:i+1])
			}
		}
	})
}

// frame is a numbered frame: its number then a pattern derived from it.
func frame(i, size int) []byte {
	b := make([]byte, size)
	b[0], b[1], b[2], b[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	for j := 4; j < size; j++ {
		b[j] = byte(i*7 + j)
	}
	return b
}

func TestRecvOrder(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		// Many outstanding receives on one socket complete in order and
		// together return the stream.
		var futs []*ad.Future[[]byte]
		for i := 0; i < 200; i++ {
			futs = append(futs, d.Recv(s, 1000, ad.DefaultFlags))
		}
		var done []int
		for i, f := range futs {
			f.AddCallback(func() { done = append(done, i) })
		}
		var want bytes.Buffer
		for i := 0; i < 50; i++ {
			want.Write(frame(i, 3000))
		}
		sent := d.Send(c, want.Bytes(), ad.DefaultFlags)
		var got bytes.Buffer
		for len(done) == 0 || got.Len() < want.Len() {
			f := futs[0]
			futs = futs[1:]
			got.Write(wait(t, f))
		}
		wait(t, sent)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatal("receives returned the stream out of order")
		}
		for i, v := range done {
			if v != i {
				t.Fatalf("receives completed out of order: %v", done[:i+1])
			}
		}
		for _, f := range futs {
			f.Cancel()
		}
		if d.ActiveDescriptors() != 0 {
			t.Fatalf("ActiveDescriptors %d after cancelling the rest", d.ActiveDescriptors())
		}
	})
}
