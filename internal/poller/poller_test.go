//go:build linux

package poller

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

// The backend contract of poller.go, checked against epoll, with the
// system calls under fault injection where the contract says what a fault
// must (not) do.

func newPoller(t *testing.T) Poller {
	t.Helper()
	snap := leakcheck.Take()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		snap.Check(t)
	})
	return p
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

func waitEvents(t *testing.T, p Poller, timeout time.Duration) []Event {
	t.Helper()
	evs := make([]Event, 16)
	n, err := p.Wait(evs, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return evs[:n]
}

// Interest is level-triggered and exact; the token comes back unchanged
// (generation bits included); want 0 removes the fd.
func TestSetAndWait(t *testing.T) {
	p := newPoller(t)
	r, w := pipe(t)
	rt, wt := uint64(r)|7<<32, uint64(w)|9<<32
	if err := p.Set(r, rt, 0, Read); err != nil {
		t.Fatal(err)
	}
	if evs := waitEvents(t, p, 0); len(evs) != 0 {
		t.Fatalf("empty pipe reported: %v", evs)
	}
	unix.Write(w, []byte("x"))
	for i := 0; i < 3; i++ { // level-triggered: again and again
		evs := waitEvents(t, p, time.Second)
		if len(evs) != 1 || evs[0].Token != rt || evs[0].Ready != Read || evs[0].Err {
			t.Fatalf("round %d: %+v", i, evs)
		}
	}
	if err := p.Set(w, wt, 0, Write); err != nil {
		t.Fatal(err)
	}
	if err := p.Set(r, rt, Read, 0); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, p, time.Second)
	if len(evs) != 1 || evs[0].Token != wt || evs[0].Ready != Write {
		t.Fatalf("write end: %+v", evs)
	}
	// Hang-up: the read end of a pipe whose writer is gone.
	if err := p.Set(w, wt, Write, 0); err != nil {
		t.Fatal(err)
	}
	r2, w2 := pipe(t)
	if err := p.Set(r2, 5, 0, Read); err != nil {
		t.Fatal(err)
	}
	unix.Close(w2)
	evs = waitEvents(t, p, time.Second)
	if len(evs) != 1 || !evs[0].Err || evs[0].Ready != Read|Write {
		t.Fatalf("hang-up: %+v", evs)
	}
	p.Set(r2, 5, Read, 0)
}

// Wake is safe from any goroutine, coalesces, and never shows up as an
// event; a Wait blocked without a limit returns promptly.
func TestWake(t *testing.T) {
	p := newPoller(t)
	done := make(chan []Event)
	go func() {
		evs := make([]Event, 4)
		n, err := p.Wait(evs, -1)
		if err != nil {
			t.Error(err)
		}
		done <- evs[:n]
	}()
	time.Sleep(10 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if err := p.Wake(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	select {
	case evs := <-done:
		if len(evs) != 0 {
			t.Fatalf("the waker appeared as events: %+v", evs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not end a blocked Wait")
	}
	wg.Wait()
	waitEvents(t, p, 0) // drain a wake that came after the first Wait
	if evs := waitEvents(t, p, 0); len(evs) != 0 {
		t.Fatalf("after the wakes were drained: %+v", evs)
	}
}

// A timeout is rounded up, never down; 0 never blocks.
func TestWaitTimeout(t *testing.T) {
	p := newPoller(t)
	for _, d := range []time.Duration{time.Microsecond, 1500 * time.Microsecond, 20 * time.Millisecond} {
		start := time.Now()
		waitEvents(t, p, d)
		if el := time.Since(start); el < d {
			t.Fatalf("Wait(%v) returned after %v", d, el)
		}
	}
	start := time.Now()
	waitEvents(t, p, 0)
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Wait(0) blocked %v", el)
	}
}

// A signal interrupting epoll_wait is not an event: Wait goes back to
// waiting for the time left (a bounded Wait still lasts its time, an
// unbounded one still waits for an event); only Wait(0) returns at once,
// empty. The waker's write retries EINTR. An epoll_wait error is an
// *os.SyscallError.
func TestWaitFaults(t *testing.T) {
	in := faults.Install(t)
	p := newPoller(t)
	rule := in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{p.Fd()}, Limit: 3, Err: unix.EINTR})
	start := time.Now()
	if evs := waitEvents(t, p, 30*time.Millisecond); len(evs) != 0 {
		t.Fatalf("events from nothing: %+v", evs)
	}
	if el := time.Since(start); el < 30*time.Millisecond || rule.Acted() == 0 {
		t.Fatalf("interrupted Wait(30ms) returned after %v (%d EINTR)", el, rule.Acted())
	}
	r, w := pipe(t)
	if rule.Acted() != 3 {
		t.Fatalf("%d EINTR injected", rule.Acted())
	}
	in.Remove(rule)
	rule = in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{p.Fd()}, Limit: 3, Err: unix.EINTR})
	go func() { time.Sleep(20 * time.Millisecond); unix.Write(w, []byte("y")) }()
	p.Set(r, 1, 0, Read)
	if evs := waitEvents(t, p, -1); len(evs) != 1 || evs[0].Token != 1 || rule.Acted() != 3 {
		t.Fatalf("interrupted Wait(-1): %+v", evs)
	}
	p.Set(r, 1, Read, 0)
	in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{p.Fd()}, Limit: 1, Err: unix.EINTR})
	if evs := waitEvents(t, p, 0); len(evs) != 0 {
		t.Fatalf("Wait(0) interrupted: %+v", evs)
	}
	in.Add(&faults.Rule{Op: faults.Write, Limit: 3, Err: unix.EINTR})
	if err := p.Wake(); err != nil {
		t.Fatalf("Wake through EINTR: %v", err)
	}
	if evs := waitEvents(t, p, time.Second); len(evs) != 0 {
		t.Fatalf("after Wake: %+v", evs)
	}
	in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{p.Fd()}, Limit: 1, Err: unix.EBADF})
	_, err := p.Wait(make([]Event, 4), time.Second)
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "epoll_wait" || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("epoll_wait failing: %v", err)
	}
	in.Add(&faults.Rule{Op: faults.EpollCtl, Limit: 1, Err: unix.ENOSPC})
	if err := p.Set(r, 1, 0, Read); !errors.As(err, &se) || se.Syscall != "epoll_ctl" || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("epoll_ctl failing: %v", err)
	}
}

// Every descriptor of the backend is close-on-exec, and Close releases
// them all (newPoller's leak check).
func TestPollerCloseOnExec(t *testing.T) {
	p := newPoller(t)
	ep := p.(*epoll)
	for _, fd := range []int{ep.epfd, ep.wakefd} {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Fatalf("fd %d: flags %#x, %v", fd, fl, err)
		}
	}
}

// A timeout of 24.86 days or more must not wrap around the 32-bit
// millisecond count epoll_wait takes: 30 days would turn negative (wait
// forever), 2³² ms + 20 ms would become 20 ms. It is capped at MaxWait
// instead, and the rounding up stays.
func TestWaitHugeTimeoutCapped(t *testing.T) {
	const day = 24 * time.Hour
	capMs := int(MaxWait / time.Millisecond)
	for _, c := range []struct {
		in   time.Duration
		want int
	}{
		{-1, -1},
		{-time.Hour, -1},
		{0, 0},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{time.Second, 1000},
		{MaxWait - time.Millisecond, capMs - 1},
		{MaxWait - time.Nanosecond, capMs},
		{MaxWait, capMs},
		{30 * day, capMs},
		{(1<<32 + 20) * time.Millisecond, capMs},
		{1<<63 - 1, capMs},
	} {
		if got := waitMillis(c.in); got != c.want {
			t.Errorf("waitMillis(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	// The real wait: 2³² ms + 20 ms lasts until the wake, not 20 ms.
	p := newPoller(t)
	woke := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		woke <- time.Now()
		p.Wake()
	}()
	start := time.Now()
	evs := waitEvents(t, p, (1<<32+20)*time.Millisecond)
	if el := time.Since(start); len(evs) != 0 || el < 300*time.Millisecond {
		t.Fatalf("Wait(2³² ms + 20 ms) returned after %v with %+v, before the wake", el, evs)
	}
	<-woke
}
