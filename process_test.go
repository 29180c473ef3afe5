//go:build linux

package asyncdispatch_test

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func startChild(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// waitExited blocks until the child pid has exited, without reaping it
// (waitid with WNOWAIT): afterwards it is a zombie.
func waitExited(t testing.TB, pid int) {
	t.Helper()
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("waitid(%d): %v", pid, err)
		}
		return
	}
}

// Several registrations at once — different children, and two for the
// same child — all fire (Nim's concurrent addProcess breaks poll with
// EAGAIN), and nothing is reaped: cmd.Wait still gets each exit status.
func TestAddProcessSeveralChildren(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		cmds := []*exec.Cmd{
			startChild(t, "sleep", "0.05"),
			startChild(t, "sleep", "0.1"),
			startChild(t, "sh", "-c", "exit 2"),
		}
		fired := map[int]int{}
		for _, c := range cmds {
			pid := c.Process.Pid
			if err := d.AddProcess(pid, func(fd ad.AsyncFD) bool {
				if fd < 0 {
					t.Errorf("process callback got fd %d", fd)
				}
				fired[pid]++
				return false // ignored: an exit happens once
			}); err != nil {
				t.Fatal(err)
			}
		}
		first := cmds[0].Process.Pid
		if err := d.AddProcess(first, func(ad.AsyncFD) bool { fired[-1]++; return true }); err != nil {
			t.Fatal(err)
		}
		if got := d.ActiveDescriptors(); got != 4 {
			t.Fatalf("ActiveDescriptors = %d, want 4", got)
		}
		pollUntilDone(t, d, 10*time.Second, func() bool { return len(fired) == 4 })
		if err := d.Drain(time.Second); err != nil {
			t.Fatal(err)
		}
		for pid, n := range fired {
			if n != 1 {
				t.Errorf("registration for %d fired %d times", pid, n)
			}
		}
		if d.HasPendingOperations() || d.RegisteredDescriptors() != 0 {
			t.Fatalf("after the exits: pending %v, registered %d", d.HasPendingOperations(), d.RegisteredDescriptors())
		}
		// Not reaped: the exit statuses are still there for cmd.Wait.
		for i, c := range cmds {
			err := c.Wait()
			var ee *exec.ExitError
			switch {
			case i < 2 && err != nil:
				t.Errorf("%v: %v", c.Args, err)
			case i == 2 && (!errors.As(err, &ee) || ee.ExitCode() != 2):
				t.Errorf("%v: %v, want exit status 2", c.Args, err)
			}
		}
	})
}

// A child that exited before AddProcess (a zombie) is reported at once
// (Nim never reports it).
func TestAddProcessAlreadyExited(t *testing.T) {
	d := newD(t)
	cmd := startChild(t, "true")
	waitExited(t, cmd.Process.Pid)
	fired := false
	if err := d.AddProcess(cmd.Process.Pid, func(ad.AsyncFD) bool { fired = true; return true }); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("exit of a zombie child not reported by the first Poll")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if d.RegisteredDescriptors() != 0 {
		t.Fatal("pidfd still registered")
	}
}

// A process that is not our child — a grandchild orphaned by its shell —
// is watched too; WaitProcess reports its exit with an unknown status.
func TestAddProcessNonChild(t *testing.T) {
	d := newD(t)
	out, err := exec.Command("sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("sh printed %q", out)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != unix.ECHILD {
		t.Fatalf("pid %d should not be our child: waitid says %v", pid, err)
	}
	fired := false
	if err := d.AddProcess(pid, func(ad.AsyncFD) bool { fired = true; return true }); err != nil {
		t.Fatal(err)
	}
	w := d.WaitProcess(pid)
	st, err := ad.WaitFor(ad.Timeout(w, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(time.Second); err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("AddProcess callback did not run")
	}
	if st.Pid != pid || st.Reaped || st.Code != -1 || st.Exited() || st.Success() {
		t.Fatalf("non-child status: %+v", st)
	}
	if !strings.Contains(st.String(), "unknown") {
		t.Fatalf("String() = %q", st.String())
	}
}

// WaitProcess reaps a child and yields its exit status.
func TestWaitProcessExitStatus(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		exit3 := startChild(t, "sh", "-c", "exit 3")
		ok := startChild(t, "true")
		killed := startChild(t, "sh", "-c", "kill -TERM $$")
		fs := []*ad.Future[ad.ExitStatus]{
			d.WaitProcess(exit3.Process.Pid),
			d.WaitProcess(ok.Process.Pid),
			d.WaitProcess(killed.Process.Pid),
		}
		sts, err := ad.WaitFor(ad.Timeout(ad.All(fs...), 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if s := sts[0]; !s.Reaped || !s.Exited() || s.Code != 3 || s.Success() || s.Pid != exit3.Process.Pid {
			t.Errorf("exit 3: %+v", s)
		}
		if s := sts[1]; !s.Success() {
			t.Errorf("true: %+v (%v)", s, s)
		}
		if s := sts[2]; !s.Reaped || s.Exited() || s.Signal != syscall.SIGTERM || s.Code != -1 {
			t.Errorf("killed: %+v (%v)", s, s)
		}
		// Reaped: the pid is gone, so os/exec's Wait would fail; Release
		// frees what os.Process holds (its own pidfd).
		for _, c := range []*exec.Cmd{exit3, ok, killed} {
			var info unix.Siginfo
			if err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOHANG, nil); err != unix.ECHILD {
				t.Errorf("pid %d not reaped: waitid says %v", c.Process.Pid, err)
			}
			c.Process.Release()
		}
		if d.RegisteredDescriptors() != 0 {
			t.Fatal("pidfds still registered")
		}
	})
}

// Errors: an unknown pid (ESRCH at once, not a registration that never
// fires: Nim #22758), a bad pid, a nil callback, a closed dispatcher.
func TestAddProcessErrors(t *testing.T) {
	d := newD(t)
	cmd := startChild(t, "true")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid // reaped: no such process (barring pid reuse)
	if err := d.AddProcess(gone, func(ad.AsyncFD) bool { return true }); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("AddProcess of a reaped pid: %v", err)
	}
	if _, err := d.WaitProcess(gone).Read(); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("WaitProcess of a reaped pid: %v", err)
	}
	if err := d.AddProcess(0, func(ad.AsyncFD) bool { return true }); err == nil {
		t.Fatal("AddProcess(0) succeeded")
	}
	if err := d.AddProcess(1, nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatalf("nil callback: %v", err)
	}
	if d.RegisteredDescriptors() != 0 || d.HasPendingOperations() {
		t.Fatal("a failed registration left something behind")
	}
	d.Close()
	if err := d.AddProcess(1, func(ad.AsyncFD) bool { return true }); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("closed dispatcher: %v", err)
	}
	if _, err := d.WaitProcess(1).Read(); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("closed dispatcher: %v", err)
	}
}

// Without pidfd_open (Linux < 5.3, or a seccomp filter), AddProcess and
// WaitProcess fail with ErrProcessUnsupported and register nothing: there
// is deliberately no fallback (process_linux.go says why).
func TestAddProcessWithoutPidfd(t *testing.T) {
	for _, errno := range []error{unix.ENOSYS, unix.EPERM} {
		restore := ad.SetPidfdOpen(func(int) (int, error) { return -1, errno })
		d := newD(t)
		err := d.AddProcess(1, func(ad.AsyncFD) bool { return true })
		_, werr := d.WaitProcess(1).Read()
		restore()
		for _, e := range []error{err, werr} {
			if !errors.Is(e, ad.ErrProcessUnsupported) || !errors.Is(e, errors.ErrUnsupported) || !errors.Is(e, errno) {
				t.Errorf("%v: got %v", errno, e)
			}
		}
		if d.RegisteredDescriptors() != 0 || d.HasPendingOperations() {
			t.Fatal("an unsupported registration left something behind")
		}
	}
}

// Cancelling WaitProcess, or closing the dispatcher, releases the pidfds.
func TestWaitProcessCancelAndClose(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		cmd := startChild(t, "sleep", "10")
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
		pid := cmd.Process.Pid
		w := d.WaitProcess(pid)
		if !w.Cancel() || !errors.Is(w.Err(), ad.ErrCancelled) {
			t.Fatalf("Cancel: %v", w.Err())
		}
		if d.RegisteredDescriptors() != 0 || d.HasPendingOperations() {
			t.Fatal("a cancelled WaitProcess left its pidfd registered")
		}
		w = d.WaitProcess(pid)
		if err := d.AddProcess(pid, func(ad.AsyncFD) bool { t.Error("callback ran"); return true }); err != nil {
			t.Fatal(err)
		}
		if d.RegisteredDescriptors() != 2 {
			t.Fatalf("RegisteredDescriptors = %d, want 2", d.RegisteredDescriptors())
		}
		d.Close()
		if !errors.Is(w.Err(), ad.ErrClosed) {
			t.Fatalf("WaitProcess at Close: %v", w.Err())
		}
	})
}

// The package-level AddProcess uses the global dispatcher.
func TestGlobalAddProcess(t *testing.T) {
	cmd := startChild(t, "true")
	fired := false
	if err := ad.AddProcess(cmd.Process.Pid, func(ad.AsyncFD) bool { fired = true; return true }); err != nil {
		t.Fatal(err)
	}
	for !fired {
		if err := ad.Poll(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Defect: AddProcess closed the pidfd's number after its callback
// returned, even when the callback had closed the pidfd itself with
// CloseSocket (accepted) and the number had meanwhile gone to a new
// socket, which was then closed under its owner. The pidfd is now closed
// once, by whoever is first.
func TestAddProcessCallbackClosesPidfd(t *testing.T) {
	d := newD(t)
	cmd := startChild(t, "true")
	waitExited(t, cmd.Process.Pid)
	defer cmd.Wait()
	pidfd, sock := ad.AsyncFD(-1), ad.AsyncFD(-1)
	if err := d.AddProcess(cmd.Process.Pid, func(fd ad.AsyncFD) bool {
		pidfd = fd
		if err := d.CloseSocket(fd); err != nil {
			t.Errorf("CloseSocket(pidfd): %v", err)
		}
		// The lowest free number: the pidfd's, just released.
		s, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false)
		if err != nil {
			t.Error(err)
		}
		sock = s
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if pidfd < 0 {
		t.Fatal("the process callback did not run")
	}
	if sock != pidfd {
		t.Skipf("the new socket got %d, not the pidfd's number %d: nothing to test", sock, pidfd)
	}
	if !isOpen(sock) || !d.Contains(sock) {
		t.Fatalf("socket %d (the pidfd's old number) was closed under its owner", sock)
	}
	if err := d.CloseSocket(sock); err != nil {
		t.Fatalf("CloseSocket of the new socket: %v", err)
	}
}

// The same mechanism for WaitProcess: a CloseSocket of its pidfd's number
// fails the wait and closes the pidfd once (it was closed twice, and the
// second close failed with EBADF or closed a descriptor opened meanwhile).
func TestWaitProcessPidfdClosedBySocketClose(t *testing.T) {
	d := newD(t)
	cmd := startChild(t, "sleep", "10")
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	before := openFDs()
	w := d.WaitProcess(cmd.Process.Pid)
	var pidfd ad.AsyncFD = -1
	for _, desc := range newFDs(before) {
		// "fd -> target" lines; the pidfd is an anon inode.
		if strings.Contains(desc, "pidfd") {
			n, err := strconv.Atoi(strings.Fields(desc)[0])
			if err != nil {
				t.Fatalf("%q: %v", desc, err)
			}
			pidfd = ad.AsyncFD(n)
		}
	}
	if pidfd < 0 || !d.Contains(pidfd) {
		t.Fatalf("no registered pidfd among the new descriptors %q", newFDs(before))
	}
	if err := d.CloseSocket(pidfd); err != nil {
		t.Fatalf("CloseSocket(pidfd): %v", err)
	}
	if !errors.Is(w.Err(), ad.ErrClosedSocket) {
		t.Fatalf("WaitProcess after its pidfd was closed: %v", w.Err())
	}
	if isOpen(pidfd) || d.RegisteredDescriptors() != 0 || d.HasPendingOperations() {
		t.Fatal("the pidfd is still open or registered")
	}
}
