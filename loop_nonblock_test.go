//go:build linux

package asyncdispatch_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// inSyscall reports whether some thread of the process is in system call
// nr now (/proc/self/task/*/syscall starts with its number).
func inSyscall(nr int) bool {
	paths, _ := filepath.Glob("/proc/self/task/*/syscall")
	want := strconv.Itoa(nr) + " "
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), want) {
			return true
		}
	}
	return false
}

// Defect: receives and sends were made with RawSyscall6, without telling
// the scheduler. O_NONBLOCK belongs to the open file, so a dup or a child
// sharing a registered socket can clear it; a receive then blocks, and a
// raw call blocking keeps its P from the runtime: every stop-the-world of
// the whole process — runtime.GC() here — waits for it. Here the peer is
// held by a child that writes nothing, and a GC must still finish while
// the loop is stuck in recvfrom.
func TestBlockedReceiveDoesNotStopTheWorld(t *testing.T) {
	d := newD(t)
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := ad.AsyncFD(sp[0])
	if err := d.Register(a); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer d.Unregister(a)
	// Someone clears O_NONBLOCK through a duplicate: the flag is the open
	// file's, so a's receives block from now on.
	dup, err := unix.Dup(sp[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(dup, false); err != nil {
		t.Fatal(err)
	}
	unix.Close(dup)
	// The peer lives in a child that says nothing for a while.
	peer := os.NewFile(uintptr(sp[1]), "peer")
	child := exec.Command("sleep", "10")
	child.ExtraFiles = []*os.File{peer}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	reaped := false
	defer func() {
		if !reaped {
			child.Process.Kill()
			child.Wait()
		}
	}()

	got := make(chan error, 1)
	go func() {
		// This goroutine is the loop's for the rest of the test.
		_, err := ad.WaitFor(d.RecvInto(a, make([]byte, 8), 0))
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !inSyscall(unix.SYS_RECVFROM) {
		if time.Now().After(deadline) {
			t.Fatal("the receive never blocked in recvfrom")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	runtime.GC()
	gc := time.Since(start)
	// End the receive: the child's exit closes the peer (end of file).
	child.Process.Kill()
	child.Wait()
	reaped = true
	if err := <-got; err != nil {
		t.Fatalf("the receive: %v", err)
	}
	if gc > 5*time.Second {
		t.Fatalf("runtime.GC took %v while the loop was blocked in a receive: the world waited for it", gc)
	}
}
