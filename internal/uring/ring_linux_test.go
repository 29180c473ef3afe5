//go:build linux

package uring

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestNopRoundTrip(t *testing.T) {
	r := newRing(t, Options{})
	for i := uint64(1); i <= 3; i++ {
		submit(t, r, func(s *SQE) { s.PrepNop(i) })
	}
	got := waitCQEs(t, r, 3)
	for i, c := range got {
		if c.UserData != uint64(i+1) || c.Res != 0 || c.Flags != 0 {
			t.Errorf("completion %d = %+v, want user_data %d res 0", i, c, i+1)
		}
	}
	if n := r.InFlight(); n != 1 { // the waker
		t.Errorf("InFlight = %d, want 1 (the waker)", n)
	}
}

// TestRingVariants runs the same work on every kind of ring New can
// make: the flags an older kernel would leave (no NO_SQARRAY: the SQ
// index array; no SUBMIT_ALL), two ring mappings (no SINGLE_MMAP),
// COOP_TASKRUN, and SINGLE_ISSUER|DEFER_TASKRUN on a locked thread.
func TestRingVariants(t *testing.T) {
	for _, v := range []struct {
		name string
		o    Options
		lock bool
	}{
		{"default", Options{}, false},
		{"5.5-flags", Options{flags: SetupCQSize | SetupClamp}, false},
		{"two-mmaps", Options{twoMmaps: true}, false},
		{"coop", Options{coopTaskrun: true}, false},
		{"single-issuer", Options{SingleIssuer: true}, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			if v.lock {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			v.o.Entries, v.o.CQEntries = 8, 16
			r, err := New(v.o)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				addrs := ringMappings(r)
				if err := r.Close(); err != nil {
					t.Error(err)
				}
				checkUnmapped(t, addrs)
			}()
			if v.o.twoMmaps && len(r.cqMem) == 0 {
				t.Error("twoMmaps: CQ ring not mapped on its own")
			}
			t.Logf("flags %#x", r.SetupFlags())
			a, b := socketpair(t, unix.SOCK_STREAM)
			sendRecv(t, r, a, b, []byte("variant"), false)
			testCQOverflow(t, r)
			go func() {
				time.Sleep(10 * time.Millisecond)
				r.Wake()
			}()
			if _, err := r.SubmitAndWait(1, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			for c := range r.Completions() {
				t.Errorf("unexpected %+v", c)
			}
			start := time.Now()
			if _, err := r.SubmitAndWait(1, 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
				t.Errorf("timeout: %v after %v", err, time.Since(start))
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	var r Ring
	for _, c := range []struct {
		e    unix.Errno
		want error
	}{{unix.EBUSY, ErrBusy}, {unix.EAGAIN, ErrBusy}, {unix.EEXIST, ErrWrongThread}, {unix.EBADR, ErrCQDropped}} {
		if err := r.enterErr(c.e); !errors.Is(err, c.want) || !errors.Is(err, c.e) {
			t.Errorf("enterErr(%v) = %v", c.e, err)
		}
	}
}

func TestSetupFlagsAndFeatures(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	if r.SQEntries() != 8 || r.CQEntries() != 32 {
		t.Errorf("entries SQ %d CQ %d, want 8 and 32", r.SQEntries(), r.CQEntries())
	}
	t.Logf("setup flags %#x features %#x", r.SetupFlags(), r.Features())
	if r.Features()&FeatSingleMmap == 0 {
		t.Logf("kernel without IORING_FEAT_SINGLE_MMAP: two ring mappings")
	}
	flags, err := unix.FcntlInt(uintptr(r.Fd()), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("ring fd is not close-on-exec")
	}
	flags, err = unix.FcntlInt(uintptr(r.wakefd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("waker eventfd not close-on-exec (flags %#x, %v)", flags, err)
	}
}

// TestSetupFlagFallback: every flag set New may try is one a kernel
// could refuse; the list must end with the plain set and each step drop
// only flags.
func TestSetupFlagFallback(t *testing.T) {
	for _, o := range []Options{{}, {SingleIssuer: true}, {coopTaskrun: true}} {
		list := setupFlags(o)
		last := list[len(list)-1]
		if last != SetupCQSize|SetupClamp {
			t.Errorf("%+v: last flag set %#x, want CQSIZE|CLAMP", o, last)
		}
		for i, f := range list {
			if f&SetupDeferTaskrun != 0 && f&SetupSingleIssuer == 0 {
				t.Errorf("%+v: set %d has DEFER_TASKRUN without SINGLE_ISSUER", o, i)
			}
			if f&SetupTaskrunFlag != 0 && f&(SetupCoopTaskrun|SetupDeferTaskrun) == 0 {
				t.Errorf("%+v: set %d has TASKRUN_FLAG alone", o, i)
			}
		}
	}
	// A flag the kernel refuses (SQPOLL with IOPOLL is fine; an unknown
	// bit is not) is reported, not retried for ever.
	if _, err := New(Options{flags: 1 << 31}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("New with an unknown flag: %v, want EINVAL", err)
	}
}

func TestSQFullThenSubmitFrees(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	n := 0
	for r.GetSQE() != nil {
		n++
		r.sqes[slot(r.sqeTail-1, r.sqMask)].PrepNop(uint64(n))
	}
	if n != 4 {
		t.Fatalf("GetSQE gave %d SQEs before nil, want 4", n)
	}
	if r.SQSpace() != 0 || r.SQReady() != 4 {
		t.Fatalf("SQSpace %d SQReady %d, want 0 and 4", r.SQSpace(), r.SQReady())
	}
	if got, err := r.Submit(); err != nil || got != 4 {
		t.Fatalf("Submit = %d, %v; want 4", got, err)
	}
	if r.GetSQE() == nil {
		t.Fatal("GetSQE nil after Submit")
	}
	r.sqes[slot(r.sqeTail-1, r.sqMask)].PrepNop(5)
	waitCQEs(t, r, 5)
}

// TestCQOverflowLosesNothing submits many more NOPs than the CQ holds
// without reaping: the kernel parks the excess in its overflow list
// (IORING_FEAT_NODROP) and Completions must bring every one out.
func TestCQOverflowLosesNothing(t *testing.T) {
	testCQOverflow(t, newRing(t, Options{Entries: 8, CQEntries: 16}))
}

func testCQOverflow(t *testing.T, r *Ring) {
	const total = 200
	next := uint64(1)
	for next <= total {
		for next <= total {
			sqe := r.GetSQE()
			if sqe == nil {
				break
			}
			sqe.PrepNop(next)
			next++
		}
		if _, err := r.Submit(); err != nil {
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("Submit: %v", err)
			}
			t.Logf("Submit: %v after %d (back-pressure)", err, next-1)
			break
		}
	}
	if !r.CQOverflowPending() {
		t.Fatal("IORING_SQ_CQ_OVERFLOW not set after overfilling the CQ")
	}
	seen := make(map[uint64]int)
	for len(seen) < total {
		before := len(seen)
		for c := range r.Completions() {
			seen[c.UserData]++
		}
		if next <= total { // back-pressure: submit the rest now
			for ; next <= total; next++ {
				sqe := r.GetSQE()
				if sqe == nil {
					break
				}
				sqe.PrepNop(next)
			}
			if _, err := r.SubmitAndWait(1, 0); err != nil && !errors.Is(err, ErrBusy) {
				t.Fatal(err)
			}
			continue
		}
		if len(seen) == before {
			t.Fatalf("Completions made no progress at %d of %d", len(seen), total)
		}
	}
	for ud, n := range seen {
		if n != 1 || ud < 1 || ud > total {
			t.Errorf("user_data %d seen %d times", ud, n)
		}
	}
	if r.CQOverflowPending() || r.CQDropped() != 0 {
		t.Errorf("after reaping: overflow pending %v, dropped %d", r.CQOverflowPending(), r.CQDropped())
	}
}

// ringMappings returns the start addresses of every mapping r made: its
// rings, its SQE array and its buffer rings. Counting all of the
// process's mappings instead is flaky: the Go runtime maps memory of its
// own at any time (heap growth), and a count taken before and after a test
// then differs by one without any leak.
func ringMappings(r *Ring) []uintptr {
	var addrs []uintptr
	for _, m := range [][]byte{r.ringMem, r.cqMem, r.sqeMem} {
		if len(m) > 0 {
			addrs = append(addrs, uintptr(unsafe.Pointer(&m[0])))
		}
	}
	for _, br := range r.bufRings {
		if len(br.mem) > 0 {
			addrs = append(addrs, uintptr(unsafe.Pointer(&br.mem[0])))
		}
	}
	return addrs
}

// checkUnmapped fails t if any address in addrs still starts a mapping
// in /proc/self/maps.
func checkUnmapped(t testing.TB, addrs []uintptr) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		start, _, ok := bytes.Cut(line, []byte("-"))
		if !ok {
			continue
		}
		a, err := strconv.ParseUint(string(start), 16, 64)
		if err != nil {
			continue
		}
		for _, want := range addrs {
			if uintptr(a) == want {
				t.Errorf("mapping at %#x still there after Close: %s", want, line)
			}
		}
	}
}

func fdCount(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCloseWithOperationsInFlight: Close cancels pending requests, waits
// for them, and leaves no fd and no mapping behind.
func TestCloseWithOperationsInFlight(t *testing.T) {
	a, _ := socketpair(t, unix.SOCK_STREAM)
	lfd, _ := listenTCP(t)
	// Warm up whatever the runtime maps lazily before counting.
	warm, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	fds0 := fdCount(t)
	var addrs []uintptr
	for round := 0; round < 3; round++ {
		r, err := New(Options{Entries: 16})
		if err != nil {
			t.Fatal(err)
		}
		br, err := r.NewBufRing(1, 8, 512)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		for _, prep := range []func(*SQE){
			func(s *SQE) { s.PrepRecv(a, buf, 0, 1) },
			func(s *SQE) { s.PrepRecvMultishot(a, br.Group(), 0, 2) },
			func(s *SQE) { s.PrepAcceptMultishot(lfd, 3) },
			func(s *SQE) { s.PrepPollMultishot(a, unix.POLLPRI, 4) },
			func(s *SQE) { s.PrepTimeout(&Timespec{Sec: 3600}, 0, 0, 5) },
		} {
			prep(r.GetSQE())
		}
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if n := r.InFlight(); n != 6 {
			t.Fatalf("InFlight = %d before Close, want 6", n)
		}
		addrs = append(addrs, ringMappings(r)...)
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if n := r.InFlight(); n != 0 {
			t.Errorf("InFlight = %d after Close, want 0", n)
		}
	}
	checkUnmapped(t, addrs)
	if f := fdCount(t); f != fds0 {
		t.Errorf("after 3 rings: %d fds (was %d)", f, fds0)
	}
}

// TestCloseWithHandsOverCompletions: completions reaped while closing
// (here an accepted connection's fd, already in the CQ, and the
// cancelled accept's last one) reach CloseWith's function, so that the
// fd can be closed; plain Close would leak it (the leak check says so).
func TestCloseWithHandsOverCompletions(t *testing.T) {
	lfd, sa := listenTCP(t)
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	submit(t, r, func(s *SQE) { s.PrepAcceptMultishot(lfd, 1) })
	c := tcpSocket(t)
	defer unix.Close(c)
	raw, rawLen := rawInet4(sa)
	submit(t, r, func(s *SQE) { s.PrepConnect(c, raw, rawLen, 2) })
	for r.CQReady() < 2 { // the accept's and the connect's, not reaped
		pollFd(t, r.Fd(), unix.POLLIN)
	}
	var accepted, final int
	err = r.CloseWith(func(c CQE) {
		switch {
		case c.UserData == 1 && c.More() && c.Res >= 0:
			unix.Close(int(c.Res))
			accepted++
		case c.UserData == 1 && !c.More():
			final++
		}
	})
	if err != nil || accepted != 1 || final != 1 {
		t.Errorf("CloseWith: %v; %d accepted fds and %d final accept completions handed over, want 1 and 1", err, accepted, final)
	}
}

func TestUseAfterClose(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	submit(t, r, func(s *SQE) { s.PrepNop(1) })
	submit(t, r, func(s *SQE) { s.PrepNop(2) })
	for r.CQReady() < 2 {
		pollFd(t, r.Fd(), unix.POLLIN)
	}
	n := 0
	for range r.Completions() {
		n++
		if err := r.Close(); err != nil { // inside the loop: the iteration stops
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("%d completions yielded after Close in the loop body, want 1", n)
	}
	if r.GetSQE() != nil || r.SQSpace() != 0 || r.CQReady() != 0 || r.CQOverflowPending() {
		t.Error("a closed ring still hands out SQEs or reports completions")
	}
	if _, err := r.Submit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	if _, err := r.SubmitAndWait(1, -1); !errors.Is(err, ErrClosed) {
		t.Errorf("SubmitAndWait after Close: %v", err)
	}
	if _, err := r.NewBufRing(1, 1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("NewBufRing after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestEnvHookSimulatesUnavailable(t *testing.T) {
	for _, c := range []struct {
		val  string
		want unix.Errno
		text string
	}{{"enosys", unix.ENOSYS, "no io_uring"}, {"eperm", unix.EPERM, "io_uring_disabled"}} {
		t.Setenv(EnvHook, c.val)
		err := probeAvailable()
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: Available = %v", c.val, err)
		}
		if _, err := New(Options{}); !errors.Is(err, c.want) {
			t.Errorf("%s: New = %v", c.val, err)
		}
	}
}

func TestProbe(t *testing.T) {
	r := newRing(t, Options{})
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range requiredOps {
		if !p.Supports(o.op) {
			t.Errorf("%s not supported", o.name)
		}
	}
	if p.Supports(255) {
		t.Error("opcode 255 reported supported")
	}
}
