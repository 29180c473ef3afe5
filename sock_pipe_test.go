package asyncdispatch_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

// Recv, Send and their relatives on descriptors that are not sockets
// (pipes, FIFOs, terminals) registered with Register: the first recv(2)
// or send(2) that says ENOTSOCK switches the descriptor to read(2) and
// write(2) for good.

// registered registers fds with d and unregisters and closes them when
// the test ends.
func registered(t *testing.T, d *ad.Dispatcher, fds ...int) {
	t.Helper()
	for _, fd := range fds {
		if err := d.Register(ad.AsyncFD(fd)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			d.Unregister(ad.AsyncFD(fd))
			unix.Close(fd)
		}
	})
}

// pipe2 returns a registered pipe.
func pipe2(t *testing.T, d *ad.Dispatcher) (r, w ad.AsyncFD) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	registered(t, d, p[0], p[1])
	return ad.AsyncFD(p[0]), ad.AsyncFD(p[1])
}

// exchange sends msg on w with every send form and receives it on r with
// every receive form, then checks end of file once w is closed.
func exchange(t *testing.T, d *ad.Dispatcher, r, w ad.AsyncFD) {
	t.Helper()
	wait(t, d.Send(w, []byte("one"), 0))
	if got := wait(t, d.Recv(r, 64, 0)); string(got) != "one" {
		t.Fatalf("Recv: %q", got)
	}
	rs := d.RecvString(r, 64, 0) // pending: nothing there yet
	wait(t, d.SendString(w, "two", 0))
	if got := wait(t, rs); got != "two" {
		t.Fatalf("RecvString: %q", got)
	}
	buf := make([]byte, 64)
	wait(t, d.Send(w, []byte("three"), 0))
	if n := wait(t, d.RecvInto(r, buf, 0)); string(buf[:n]) != "three" {
		t.Fatalf("RecvInto: %q", buf[:n])
	}
	// The coroutine forms.
	p := ad.Async(d, func(co *ad.Coro) (string, error) {
		if err := co.Send(w, []byte("four"), 0); err != nil {
			return "", err
		}
		n, err := co.RecvInto(r, buf, 0)
		return string(buf[:n]), err
	})
	if got := wait(t, p); got != "four" {
		t.Fatalf("co.RecvInto: %q", got)
	}
}

func TestRecvSendOnPipe(t *testing.T) {
	d := newD(t)
	r, w := pipe2(t, d)
	exchange(t, d, r, w)

	// A send larger than the pipe waits for room, and arrives whole and
	// in order behind the one before it.
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	s1 := d.SendString(w, "head", 0)
	s2 := d.Send(w, big, 0)
	var got []byte
	buf := make([]byte, 32<<10)
	for len(got) < 4+len(big) {
		n := wait(t, d.RecvInto(r, buf, 0))
		if n == 0 {
			t.Fatal("early end of file")
		}
		got = append(got, buf[:n]...)
	}
	wait(t, s1)
	wait(t, s2)
	if string(got[:4]) != "head" || !bytes.Equal(got[4:], big) {
		t.Fatal("the pipe's bytes are not what was sent")
	}

	// End of file once the writer is gone; EPIPE once the reader is.
	d.Unregister(w)
	unix.Close(int(w))
	if got := wait(t, d.Recv(r, 64, 0)); len(got) != 0 {
		t.Fatalf("after the writer closed: %q", got)
	}
	r2, w2 := pipe2(t, d)
	d.Unregister(r2)
	unix.Close(int(r2))
	if err := waitErr(t, d.SendString(w2, "lost", 0)); !errors.Is(err, syscall.EPIPE) || !strings.Contains(err.Error(), "write") {
		t.Fatalf("send to a pipe without a reader: %v", err)
	}
	wait(t, d.SendString(w2, "lost", ad.SafeDisconn))
}

// A pipe from os.Pipe works the same, once registered.
func TestRecvSendOnOSPipe(t *testing.T) {
	d := newD(t)
	rf, wf, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	defer wf.Close()
	r, w := ad.AsyncFD(rf.Fd()), ad.AsyncFD(wf.Fd())
	for _, fd := range []ad.AsyncFD{r, w} {
		if err := d.Register(fd); err != nil {
			t.Fatal(err)
		}
		defer d.Unregister(fd)
	}
	exchange(t, d, r, w)
}

func TestRecvSendOnFIFO(t *testing.T) {
	d := newD(t)
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(r)
		t.Fatal(err)
	}
	registered(t, d, r, w)
	exchange(t, d, ad.AsyncFD(r), ad.AsyncFD(w))
}

// A pseudo-terminal in raw mode: what is written on one side is read on
// the other.
func TestRecvSendOnTerminal(t *testing.T) {
	d := newD(t)
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		unix.Close(m)
		t.Fatal(err)
	}
	s, err := unix.Open("/dev/pts/"+itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(m)
		t.Skipf("cannot open the pseudo-terminal's other side: %v", err)
	}
	registered(t, d, m, s)
	tio, err := unix.IoctlGetTermios(s, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// cfmakeraw: no echo, no line editing, no translation.
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(s, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	wait(t, d.SendString(ad.AsyncFD(m), "typed", 0))
	if got := readFull(t, d, ad.AsyncFD(s), 5); got != "typed" {
		t.Fatalf("terminal read %q", got)
	}
	wait(t, d.SendString(ad.AsyncFD(s), "shown", 0))
	if got := readFull(t, d, ad.AsyncFD(m), 5); got != "shown" {
		t.Fatalf("terminal wrote %q", got)
	}
}

// readFull receives n bytes from fd (a terminal may hand them out in
// pieces).
func readFull(t *testing.T, d *ad.Dispatcher, fd ad.AsyncFD, n int) string {
	t.Helper()
	var got []byte
	for len(got) < n {
		b := wait(t, d.Recv(fd, n-len(got), 0))
		if len(b) == 0 {
			t.Fatalf("end of file after %q", got)
		}
		got = append(got, b...)
	}
	return string(got)
}

// What needs a socket fails clearly on a pipe, and takes nothing from it.
func TestSocketOnlyOpsOnPipe(t *testing.T) {
	d := newD(t)
	r, w := pipe2(t, d)
	wait(t, d.SendString(w, "kept", 0))
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"Recv with Peek", waitErr(t, d.Recv(r, 64, ad.Peek)), "Peek needs a socket"},
		{"RecvFromInto", waitErr(t, d.RecvFromInto(r, make([]byte, 64), 0)), "RecvFromInto"},
		{"SendTo", waitErr(t, d.SendTo(w, []byte("x"), netip.MustParseAddrPort("127.0.0.1:9"), 0)), "SendTo"},
		{"SendToUnix", waitErr(t, d.SendToUnix(w, []byte("x"), "@nobody", 0)), "SendToUnix"},
	} {
		var se *os.SyscallError
		if !errors.Is(c.err, syscall.ENOTSOCK) || !errors.As(c.err, &se) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s on a pipe: %v", c.name, c.err)
		}
	}
	if got := wait(t, d.RecvString(r, 64, 0)); got != "kept" {
		t.Fatalf("after the refused calls the pipe held %q", got)
	}
}

// The pipe's read(2) and write(2) go through internal/sys, so fault
// tests reach them: EINTR is retried, other errors fail the operation.
func TestFaultPipeReadWrite(t *testing.T) {
	d := newD(t)
	r, w := pipe2(t, d)
	in := faults.Install(t)
	eintr := in.Add(&faults.Rule{Op: faults.Read, FDs: []int{int(r)}, Err: unix.EINTR, Limit: 3})
	wait(t, d.SendString(w, "through", 0))
	if got := wait(t, d.RecvString(r, 64, 0)); got != "through" || eintr.Acted() != 3 {
		t.Fatalf("%q after %d EINTRs", got, eintr.Acted())
	}
	in.Add(&faults.Rule{Op: faults.Write, FDs: []int{int(w)}, Err: unix.EIO, Limit: 1})
	if err := waitErr(t, d.SendString(w, "x", 0)); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "write") {
		t.Fatalf("write failing with EIO: %v", err)
	}
	wait(t, d.SendString(w, "y", 0))
	in.Add(&faults.Rule{Op: faults.Read, FDs: []int{int(r)}, Err: unix.EIO, Limit: 1})
	if err := waitErr(t, d.Recv(r, 64, 0)); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "read") {
		t.Fatalf("read failing with EIO: %v", err)
	}
}
