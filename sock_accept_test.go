package asyncdispatch_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func TestAcceptFlagsAndOrder(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		// Accepted sockets are non-blocking (Nim leaves them blocking) and
		// close-on-exec unless inheritable.
		for _, inh := range []bool{false, true} {
			acc := d.AcceptAddr(ln, ad.DefaultFlags, inh)
			c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
			r := wait(t, acc)
			fl, fdfl := fdFlags(t, r.Client)
			if fl&unix.O_NONBLOCK == 0 || (fdfl&unix.FD_CLOEXEC == 0) != inh {
				t.Fatalf("inheritable=%v: flags %#x, fd flags %#x", inh, fl, fdfl)
			}
			if !d.Contains(r.Client) {
				t.Fatal("accepted socket not registered")
			}
			d.CloseSocket(c)
			d.CloseSocket(r.Client)
		}

		// Pending accepts complete in the order they were issued, with
		// the connections in the order they arrived.
		const n = 8
		var order []int
		var accs []*ad.Future[ad.AsyncFD]
		for i := 0; i < n; i++ {
			f := d.Accept(ln, ad.DefaultFlags, false)
			f.AddCallback(func() { order = append(order, i) })
			accs = append(accs, f)
		}
		var clients []ad.AsyncFD
		for i := 0; i < n; i++ {
			clients = append(clients, wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP)))
		}
		for i, f := range accs {
			s := wait(t, f)
			_, sp, _ := ad.GetPeerAddr(s)
			_, cp, _ := ad.GetLocalAddr(clients[i])
			if sp != cp {
				t.Fatalf("accept %d got the connection from port %d, want %d", i, sp, cp)
			}
			d.CloseSocket(s)
			d.CloseSocket(clients[i])
		}
		for i, v := range order {
			if v != i {
				t.Fatalf("accepts completed in order %v", order)
			}
		}

		// An accept issued behind an AddRead callback of the listener does
		// not jump the queue: the callback sees the connection first.
		var sawFirst bool
		acc := d.Accept(ln, ad.DefaultFlags, false)
		acc.Cancel()
		if err := d.AddRead(ln, func(ad.AsyncFD) bool {
			sawFirst = !acc.Finished()
			return true
		}); err != nil {
			t.Fatal(err)
		}
		acc = d.Accept(ln, ad.DefaultFlags, false)
		c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
		s := wait(t, acc)
		if !sawFirst {
			t.Fatal("the accept ran before the AddRead callback queued before it")
		}
		for _, fd := range []ad.AsyncFD{c, s, ln} {
			d.CloseSocket(fd)
		}
	})
}

// The AddRead/AddWrite protocol on sockets: false keeps the
// callback (and the ones behind it) for the next readiness, true removes
// it; when both lists are empty the socket stops counting as active.
func TestAddReadAddWriteOnSockets(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		calls := 0
		if err := d.AddRead(s, func(fd ad.AsyncFD) bool {
			calls++
			if calls < 3 {
				return false // not consumed: level-triggered, called again
			}
			var b [16]byte
			unix.Read(int(fd), b[:])
			return true
		}); err != nil {
			t.Fatal(err)
		}
		behind := d.RecvString(s, 10, ad.DefaultFlags) // queued behind the callback
		wrote := false
		if err := d.AddWrite(c, func(fd ad.AsyncFD) bool {
			wrote = true
			unix.Write(int(fd), []byte("x"))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if d.ActiveDescriptors() != 2 {
			t.Fatalf("ActiveDescriptors %d, want 2", d.ActiveDescriptors())
		}
		for calls < 3 {
			if err := d.Poll(time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if !wrote || behind.Finished() {
			t.Fatalf("wrote %v, recv behind the callback finished %v", wrote, behind.Finished())
		}
		wait(t, d.SendString(c, "next", ad.DefaultFlags))
		if got := wait(t, behind); got != "next" {
			t.Fatalf("recv behind the callback: %q", got)
		}
		if d.ActiveDescriptors() != 0 {
			t.Fatalf("ActiveDescriptors %d, want 0", d.ActiveDescriptors())
		}
		// A callback that cancels a receive queued behind it in the same
		// round: the cancelled receive takes nothing.
		var victim *ad.Future[string]
		if err := d.AddRead(s, func(ad.AsyncFD) bool {
			victim.Cancel()
			return true
		}); err != nil {
			t.Fatal(err)
		}
		victim = d.RecvString(s, 10, ad.DefaultFlags)
		after := d.RecvString(s, 10, ad.DefaultFlags)
		wait(t, d.SendString(c, "for after", ad.DefaultFlags))
		if got := wait(t, after); got != "for after" || !victim.Cancelled() {
			t.Fatalf("recv after a cancelled one: %q, victim %v", got, victim)
		}

		max, err := ad.MaxDescriptors()
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
		if err != nil || uint64(max) != rl.Cur-1 {
			t.Fatalf("MaxDescriptors %d, %v; soft limit %d", max, err, rl.Cur)
		}
		d.CloseSocket(c)
		d.CloseSocket(s)
	})
}

const emfileChildEnv = "ASYNCDISPATCH_TEST_EMFILE_CHILD"

// Out of descriptors, accept must neither fail nor spin: the listener
// backs off, the condition is reported once, and service resumes by itself
// when descriptors are freed. It runs in a child process (the test binary
// again, as Go's own tests do) because it lowers RLIMIT_NOFILE and uses up
// every descriptor.
func TestAcceptEMFILE(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "1" {
		emfileChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptEMFILE$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestAcceptEMFILE")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "emfile:") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

func emfileChild(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		var reports []error
		d.SetAcceptErrorHandler(func(fd ad.AsyncFD, err error) { reports = append(reports, err) })
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		// The clients connect while descriptors are plentiful; their
		// connections wait in the backlog.
		const clients = 3
		var cfds []ad.AsyncFD
		for i := 0; i < clients; i++ {
			cfds = append(cfds, wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP)))
		}

		// A low limit, used up.
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
		low := old
		low.Cur = uint64(maxOpenFD(t)) + 32
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
		defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
		var fillers []int
		defer func() {
			for _, fd := range fillers {
				unix.Close(fd)
			}
		}()
		for {
			fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == unix.EMFILE {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			fillers = append(fillers, fd)
		}
		// One of the descriptors in use is a socket of the dispatcher.
		unix.Close(fillers[len(fillers)-1])
		fillers = fillers[:len(fillers)-1]
		owned, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false)
		if err != nil {
			t.Fatal(err)
		}

		var accs []*ad.Future[ad.AcceptResult]
		for i := 0; i < clients; i++ {
			accs = append(accs, d.AcceptAddr(ln, ad.DefaultFlags, false))
		}
		// Phase 1: a second out of descriptors. Measure the CPU used.
		var ru0, ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru0)
		start := time.Now()
		wait(t, d.SleepAsync(time.Second))
		wall := time.Since(start)
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		retries := ad.AcceptRetries(d)
		t.Logf("emfile: %v out of descriptors: %v CPU, %d accept attempts, reports %v", wall, cpu, retries, reports)
		for i, f := range accs {
			if f.Finished() {
				t.Fatalf("accept %d finished while out of descriptors: %v", i, f)
			}
		}
		if len(reports) != 1 || !errors.Is(reports[0], syscall.EMFILE) {
			t.Fatalf("reports %v, want one EMFILE", reports)
		}
		if retries > 20 {
			t.Fatalf("%d accept attempts in %v: spinning", retries, wall)
		}
		if cpu > wall/4 {
			t.Fatalf("%v CPU in %v out of descriptors: spinning", cpu, wall)
		}
		if d.ActiveDescriptors() != 1 || !d.HasPendingOperations() {
			t.Fatalf("backing-off listener: active %d", d.ActiveDescriptors())
		}

		// Phase 2: CloseSocket frees a descriptor, and the listener tries
		// again at once, not at the end of its back-off delay: a few
		// non-blocking polls are enough.
		d.CloseSocket(owned)
		for i := 0; i < 10 && !accs[0].Finished(); i++ {
			if err := d.Poll(0); err != nil {
				t.Fatal(err)
			}
		}
		if !accs[0].Finished() {
			t.Fatal("CloseSocket did not wake the backing-off listener")
		}
		servers := []ad.AsyncFD{wait(t, accs[0]).Client}

		// Phase 3: descriptors freed behind the dispatcher's back (a plain
		// close): service resumes by itself, without a second report.
		for _, fd := range fillers {
			unix.Close(fd)
		}
		fillers = nil
		for _, f := range accs[1:] {
			r := wait(t, f)
			if r.Address != "127.0.0.1" {
				t.Fatalf("accepted %q", r.Address)
			}
			servers = append(servers, r.Client)
		}
		if len(reports) != 1 {
			t.Fatalf("reports %v, want still one", reports)
		}
		for i, s := range servers {
			wait(t, d.SendString(s, "served", ad.DefaultFlags))
			if got := wait(t, d.RecvString(cfds[i], 10, ad.DefaultFlags)); got != "served" {
				t.Fatalf("client %d: %q", i, got)
			}
		}
		// The backlog is drained: an accept now waits (EAGAIN ends the
		// episode).
		f := d.Accept(ln, ad.DefaultFlags, false)
		if f.Finished() {
			t.Fatalf("accept on an empty backlog: %v", f)
		}
		f.Cancel()
		for _, fd := range append(append(servers, cfds...), ln) {
			d.CloseSocket(fd)
		}
	})
}

// maxOpenFD is the highest descriptor number open now.
func maxOpenFD(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	max := 0
	for _, e := range ents {
		var n int
		for _, c := range e.Name() {
			n = n*10 + int(c-'0')
		}
		if n > max {
			max = n
		}
	}
	return max
}
