package asyncdispatch_test

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Security defaults: every descriptor the package creates is
// close-on-exec (a child process inherits none of them), and writing to a
// reset peer is an error, never a SIGPIPE.

// cloexec reports whether fd has FD_CLOEXEC.
func cloexec(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fcntl(%d): %v", fd, err)
	}
	return fl&unix.FD_CLOEXEC != 0
}

// childFDs runs a shell and returns what its open descriptors point at
// (the shell's own 0, 1 and 2 are the pipes of os/exec).
func childFDs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", `for f in /proc/$$/fd/*; do readlink "$f"; done; true`).CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// Every kind of descriptor the package makes — the epoll instance and its
// eventfd waker, listening, dialled, accepted, datagram and Unix sockets,
// an AsyncEvent's eventfd, the pidfds of AddProcess and WaitProcess — has
// FD_CLOEXEC, and a child process started meanwhile inherits none of
// them. A socket asked to be inheritable is the one that does (so the
// check can see a leak).
func TestCloseOnExecEverywhere(t *testing.T) {
	before := openFDs()
	d := newCheckedD(t)
	kinds := map[string]int{"epoll instance": d.GetIoHandler()}
	ln, port := listen(t, d, "tcp", "127.0.0.1:0")
	kinds["listening socket"] = int(ln)
	acc := d.AcceptAddr(ln, ad.DefaultFlags, false)
	c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
	kinds["dialled socket"] = int(c)
	kinds["accepted socket (AcceptAddr)"] = int(wait(t, acc).Client)
	acc2 := d.Accept(ln, ad.DefaultFlags, false)
	c2, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	kinds["CreateAsyncNativeSocket"] = int(c2)
	wait(t, d.Connect(c2, "127.0.0.1", port, unix.AF_INET))
	kinds["accepted socket (Accept)"] = int(wait(t, acc2))
	u, _ := listen(t, d, "udp", "127.0.0.1:0")
	kinds["datagram socket"] = int(u)
	ul, _ := listen(t, d, "unix", filepath.Join(t.TempDir(), "s"))
	kinds["Unix socket"] = int(ul)
	ev, err := ad.NewAsyncEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if err := d.AddEvent(ev, func(ad.AsyncFD) bool { return true }); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	if err := d.AddProcess(sleeper.Process.Pid, func(ad.AsyncFD) bool { return true }); err != nil {
		t.Fatal(err)
	}
	wp := d.WaitProcess(sleeper.Process.Pid)
	if err := d.AddSignal(syscall.SIGUSR1, func(ad.AsyncFD) bool { return true }); err != nil {
		t.Fatal(err)
	}
	inheritable, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_DGRAM, 0, true)
	if err != nil {
		t.Fatal(err)
	}

	for what, fd := range kinds {
		if !cloexec(t, fd) {
			t.Errorf("%s (fd %d) is not close-on-exec", what, fd)
		}
	}
	// Every descriptor opened since the start, whatever made it.
	var made []string
	for fd, target := range openFDs() {
		if before[fd] == target || strings.HasPrefix(target, "/proc/") {
			continue
		}
		n := 0
		for _, c := range fd {
			n = n*10 + int(c-'0')
		}
		made = append(made, target)
		if want := n != int(inheritable); cloexec(t, n) != want {
			t.Errorf("fd %d (%s): close-on-exec %v", n, target, !want)
		}
	}
	sort.Strings(made)
	for _, want := range []string{"anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[pidfd]", "socket:"} {
		found := false
		for _, m := range made {
			found = found || strings.HasPrefix(m, want)
		}
		if !found {
			t.Errorf("no %s among the descriptors made: %v", want, made)
		}
	}

	// What a child sees: only the inheritable socket.
	inhTarget, _ := os.Readlink("/proc/self/fd/" + itoa(int(inheritable)))
	var leaked []string
	sawInheritable := false
	for _, target := range childFDs(t) {
		switch {
		case target == inhTarget:
			sawInheritable = true
		case strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "anon_inode:"):
			leaked = append(leaked, target)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("a child process inherited %v", leaked)
	}
	if !sawInheritable {
		t.Error("the child did not inherit the socket made inheritable: the check cannot see leaks")
	}
	wp.Cancel()
	d.RemoveSignal(syscall.SIGUSR1)
	t.Logf("figures: close-on-exec: %d descriptors made (%d kinds checked by name), all FD_CLOEXEC but the one asked to be inheritable; a child inherited none of them", len(made), len(kinds)+3)
}

// Writing to a connection the peer has reset, without SafeDisconn, is an
// error (EPIPE or ECONNRESET), never a SIGPIPE: sends use MSG_NOSIGNAL.
// SIGPIPE is caught with signal.Notify, and a plain write(2) to such a
// socket shows the catch works.
func TestNoSIGPIPE(t *testing.T) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	d := newCheckedD(t)
	gotSIGPIPE := func(within time.Duration) bool {
		select {
		case <-sigs:
			return true
		case <-time.After(within):
			return false
		}
	}
	isBroken := func(err error) bool {
		return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
	}

	// TCP, peer reset.
	c, s := connPair(t, d)
	setLinger0(t, c)
	d.CloseSocket(c)
	sends := 0
	for i := 0; i < 3; i++ {
		if err := waitErr(t, d.SendString(s, "into a reset connection", 0)); !isBroken(err) {
			t.Fatalf("send %d to a reset peer: %v", i, err)
		}
		sends++
	}
	if gotSIGPIPE(100 * time.Millisecond) {
		t.Fatal("Send raised SIGPIPE")
	}
	// The same with write(2): SIGPIPE (this is what MSG_NOSIGNAL avoids).
	for i := 0; i < 3; i++ {
		unix.Write(int(s), []byte("x"))
	}
	if !gotSIGPIPE(5 * time.Second) {
		t.Fatal("write(2) to a reset connection raised no SIGPIPE: the check is blind")
	}
	for gotSIGPIPE(50 * time.Millisecond) {
		// the other writes' signals
	}
	d.CloseSocket(s)

	// A Unix stream socket whose peer has closed.
	dir := t.TempDir()
	ln, _ := listen(t, d, "unix", filepath.Join(dir, "s"))
	acc := d.Accept(ln, 0, false)
	u, err := d.CreateAsyncNativeSocket(unix.AF_UNIX, unix.SOCK_STREAM, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, d.Connect(u, filepath.Join(dir, "s"), 0, unix.AF_UNIX))
	d.CloseSocket(wait(t, acc))
	for i := 0; i < 3; i++ {
		if err := waitErr(t, d.SendString(u, "to nobody", 0)); !isBroken(err) {
			t.Fatalf("send to a closed Unix peer: %v", err)
		}
		sends++
	}
	if gotSIGPIPE(100 * time.Millisecond) {
		t.Fatal("Send on a Unix socket raised SIGPIPE")
	}
	d.CloseSocket(u)
	d.CloseSocket(ln)
	t.Logf("figures: no SIGPIPE: %d sends to broken connections failed with EPIPE/ECONNRESET, 0 signals (write(2) raised one)", sends)
}
