//go:build linux

package uring

import (
	"math"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestWakeWhileBlocked: Wake from another goroutine ends a
// SubmitAndWait that waits for ever, and the wake is not yielded.
func TestWakeWhileBlocked(t *testing.T) {
	r := newRing(t, Options{})
	for round := 0; round < 3; round++ {
		started := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-started
			time.Sleep(20 * time.Millisecond) // let the loop block (not a synchronisation: either order must work)
			if err := r.Wake(); err != nil {
				t.Error(err)
			}
		}()
		close(started)
		if _, err := r.SubmitAndWait(1, -1); err != nil {
			t.Fatal(err)
		}
		for c := range r.Completions() {
			t.Errorf("the wake was yielded: %+v", c)
		}
		wg.Wait()
	}
}

// TestWakeCoalesces: many Wakes before the loop looks cost one
// completion, and a Wake after the loop consumed it still works.
func TestWakeCoalesces(t *testing.T) {
	r := newRing(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.Wake()
			}
		}()
	}
	wg.Wait()
	if _, err := r.SubmitAndWait(1, -1); err != nil {
		t.Fatal(err)
	}
	if n := r.CQReady(); n != 1 {
		t.Errorf("%d completions after 800 Wakes, want 1", n)
	}
	for range r.Completions() {
	}
	r.Wake()
	start := time.Now()
	if _, err := r.SubmitAndWait(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a Wake after the previous one was consumed was lost (%v)", d)
	}
}

// TestWakeRearmsAfterMultishotEnds: the kernel ends the waker's
// multishot poll (here: cancelled as if the CQ had been full); the next
// SubmitAndWait re-arms it before blocking, so a Wake still ends it.
func TestWakeRearmsAfterMultishotEnds(t *testing.T) {
	r := newRing(t, Options{})
	submit(t, r, func(s *SQE) { s.PrepPollRemove(udWake, 1) })
	waitCQE(t, r, 1)
	// The poll's own final completion may come after the remove's: wait
	// for it on the ring fd (readable when completions are ready), since
	// SubmitAndWait would re-arm the waker.
	for i := 0; r.wakeArmed && i < 100; i++ {
		if r.CQReady() == 0 {
			pollFd(t, r.Fd(), unix.POLLIN)
		}
		for c := range r.Completions() {
			t.Errorf("unexpected %+v", c)
		}
	}
	if r.wakeArmed {
		t.Fatal("waker still marked armed after its poll ended")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.Wake()
	}()
	start := time.Now()
	if _, err := r.SubmitAndWait(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second || !r.wakeArmed {
		t.Errorf("wake lost after re-arm (%v, armed %v)", d, r.wakeArmed)
	}
	for range r.Completions() {
	}
}

func testTimeout(t *testing.T, r *Ring) {
	for _, d := range []time.Duration{time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		start := time.Now()
		if _, err := r.SubmitAndWait(1, d); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		if el < d || el > d+2*time.Second {
			t.Errorf("SubmitAndWait(1, %v) returned after %v", d, el)
		}
		for c := range r.Completions() {
			t.Errorf("completion after a timeout: %+v", c)
		}
	}
}

func TestSubmitAndWaitTimeout(t *testing.T) {
	t.Run("ext_arg", func(t *testing.T) {
		r := newRing(t, Options{})
		if r.Features()&FeatExtArg == 0 {
			t.Skip("kernel without IORING_FEAT_EXT_ARG")
		}
		testTimeout(t, r)
	})
	t.Run("timeout_sqe", func(t *testing.T) {
		r := newRing(t, Options{})
		r.features &^= FeatExtArg // as on a kernel before 5.11
		testTimeout(t, r)
		if r.timeouts != 0 {
			t.Errorf("%d internal timeouts left", r.timeouts)
		}
		// A completion still ends the wait early.
		submit(t, r, func(s *SQE) { s.PrepNop(1) })
		if c, _ := waitCQE(t, r, 1); c.Res != 0 {
			t.Error(c)
		}
	})
}

// TestHugeTimeoutIsCapped: the kernel adds a relative timeout to the
// current time without saturating, so a timespec near KTIME_MAX ends the
// wait at once; SubmitAndWait must neither return early nor spin in
// io_uring_enter for time.Duration(math.MaxInt64) and 2^32 ms (which a
// 32-bit millisecond conversion would truncate to 0).
func TestHugeTimeoutIsCapped(t *testing.T) {
	for _, d := range []time.Duration{math.MaxInt64, (1 << 32) * time.Millisecond, maxWait + 1} {
		for _, fallback := range []bool{false, true} {
			r := newRing(t, Options{})
			if fallback {
				r.features &^= FeatExtArg
			}
			go func() {
				time.Sleep(300 * time.Millisecond)
				r.Wake()
			}()
			enters := r.enters
			start := time.Now()
			if _, err := r.SubmitAndWait(1, d); err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if el < 250*time.Millisecond {
				t.Errorf("SubmitAndWait(1, %v) fallback=%v returned after %v, before the Wake", d, fallback, el)
			}
			if n := r.enters - enters; n > 10 {
				t.Errorf("SubmitAndWait(1, %v) fallback=%v entered the kernel %d times (spinning)", d, fallback, n)
			}
		}
	}
}

// TestKernelHugeTimespec records (does not assert) what this kernel does
// with an uncapped wait of time.Duration(math.MaxInt64): the cap is
// defensive (see maxWait), this shows whether it is also needed here.
func TestKernelHugeTimespec(t *testing.T) {
	r := newRing(t, Options{})
	if r.Features()&FeatExtArg == 0 {
		t.Skip("kernel without IORING_FEAT_EXT_ARG")
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		r.Wake()
	}()
	r.ts = durationToTimespec(math.MaxInt64)
	r.extArg = getEventsArg{Ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
	start := time.Now()
	var e unix.Errno
	for {
		_, e = sysEnter(r.fd, 0, 1, EnterGetEvents|EnterExtArg, unsafe.Pointer(&r.extArg), unsafe.Sizeof(r.extArg))
		if e != unix.EINTR {
			break
		}
	}
	t.Logf("uncapped wait of %v: errno %d (%v) after %v (a Wake came at 300ms)", time.Duration(math.MaxInt64), int(e), e, time.Since(start))
	for range r.Completions() {
	}
}

func TestDurationToTimespec(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want Timespec
	}{
		{0, Timespec{}},
		{1, Timespec{0, 1}},
		{time.Second + 5, Timespec{1, 5}},
		{(1 << 32) * time.Millisecond, Timespec{1 << 32 / 1000, (1 << 32 % 1000) * 1e6}},
		{math.MaxInt64, Timespec{9223372036, 854775807}},
	} {
		if got := durationToTimespec(c.d); got != c.want {
			t.Errorf("durationToTimespec(%v) = %+v, want %+v", c.d, got, c.want)
		}
	}
}

func TestSubmitAndWaitZeroTimeoutDoesNotBlock(t *testing.T) {
	r := newRing(t, Options{})
	start := time.Now()
	if _, err := r.SubmitAndWait(1, 0); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("SubmitAndWait(1, 0) blocked %v", d)
	}
}
