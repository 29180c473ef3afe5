package asyncdispatch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

// echoHandler is the echo protocol as a HandleConns function.
func echoHandler(co *ad.Coro, conn ad.AsyncFD) error {
	buf := make([]byte, 16<<10)
	for {
		n, err := co.RecvInto(conn, buf, ad.DefaultFlags)
		if err != nil || n == 0 {
			return err
		}
		if err := co.Send(conn, buf[:n], ad.DefaultFlags); err != nil {
			return err
		}
	}
}

// newGroup starts a group closed at the end of the test; the test fails
// if the group leaves goroutines or descriptors behind.
func newGroup(t *testing.T, cfg ad.GroupConfig) *ad.Group {
	t.Helper()
	s := takeSnapshot()
	g, err := ad.NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		if err := settle(s); err != nil {
			t.Error(err)
		}
	})
	return g
}

// roundTrip sends msg on c and reads it back.
func roundTrip(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %q, want %q", got, msg)
	}
}

// dialEcho opens n connections to addr and checks one round trip on each.
func dialEcho(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		roundTrip(t, c, []byte("hello"))
	}
	return conns
}

func stats(t *testing.T, g *ad.Group) []ad.LoopStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := g.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestGroupStartsAndCloses(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 3})
	if g.Len() != 3 {
		t.Fatalf("Len %d, want 3", g.Len())
	}
	seen := map[*ad.Dispatcher]bool{}
	for i := 0; i < g.Len(); i++ {
		d := g.Loop(i)
		if d == nil || seen[d] {
			t.Fatalf("loop %d: dispatcher %p", i, d)
		}
		seen[d] = true
		if g.CPU(i) != -1 {
			t.Errorf("loop %d: CPU %d, want -1 (not pinned)", i, g.CPU(i))
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	for i := 0; i < g.Len(); i++ {
		select {
		case <-g.Loop(i).Done():
		default:
			t.Fatalf("loop %d is not closed", i)
		}
	}
	if _, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler)); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
}

func TestGroupDefaultsToOneLoopPerCPU(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{})
	if want := runtime.GOMAXPROCS(0); g.Len() != want {
		t.Fatalf("Len %d, want GOMAXPROCS %d", g.Len(), want)
	}
}

func TestGroupConfigErrors(t *testing.T) {
	for _, cfg := range []ad.GroupConfig{{Loops: -1}, {Loops: ad.MaxLoops + 1}, {Balance: ad.BalanceCPU}, {Balance: 9}} {
		if g, err := ad.NewGroup(cfg); err == nil {
			g.Close()
			t.Errorf("NewGroup(%+v) succeeded", cfg)
		}
	}
	for _, s := range []string{"reuseport", "handoff", "cpu"} {
		b, err := ad.ParseBalance(s)
		if err != nil || b.String() != s {
			t.Errorf("ParseBalance(%q) = %v, %v", s, b, err)
		}
	}
	if _, err := ad.ParseBalance("random"); err == nil {
		t.Error("ParseBalance accepted an unknown name")
	}
}

// Each pinned loop's thread may run on its own CPU only.
func TestGroupPinsLoopsToCPUs(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	n := all.Count()
	g := newGroup(t, ad.GroupConfig{Loops: n, Pin: true})
	used := map[int]bool{}
	for i := 0; i < n; i++ {
		cpu := g.CPU(i)
		if cpu < 0 || !all.IsSet(cpu) || used[cpu] {
			t.Fatalf("loop %d pinned to CPU %d (allowed %v, used %v)", i, cpu, all, used)
		}
		used[cpu] = true
		got := make(chan unix.CPUSet, 1)
		if err := g.Loop(i).CallSoonThreadSafe(func() {
			var set unix.CPUSet
			unix.SchedGetaffinity(0, &set)
			got <- set
		}); err != nil {
			t.Fatal(err)
		}
		set := <-got
		if set.Count() != 1 || !set.IsSet(cpu) {
			t.Fatalf("loop %d runs with affinity %v, want only CPU %d", i, set, cpu)
		}
	}
}

// With SO_REUSEPORT the kernel hashes each connection's 4-tuple to a
// listener: with 64 connections and 2 loops, every loop gets some (the
// chance that one gets none is 2⁻⁶³).
func TestGroupReusePortEveryLoopReceivesConnections(t *testing.T) {
	for _, loops := range []int{2, 3} {
		g := newGroup(t, ad.GroupConfig{Loops: loops})
		addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
		if err != nil {
			t.Fatal(err)
		}
		const conns = 64
		dialEcho(t, addr, conns)
		st := stats(t, g)
		var total uint64
		for _, s := range st {
			if s.Served == 0 || s.Accepted == 0 {
				t.Errorf("loops %d: loop %d got no connection: %+v", loops, s.Loop, s)
			}
			total += s.Served
		}
		if total != conns {
			t.Errorf("loops %d: %d connections served, want %d", loops, total, conns)
		}
		t.Logf("loops %d: served per loop %v", loops, servedOf(st))
	}
}

func servedOf(st []ad.LoopStats) []uint64 {
	var out []uint64
	for _, s := range st {
		out = append(out, s.Served)
	}
	return out
}

// BalanceHandOff: the first loop accepts everything and hands the
// connections round-robin, so the split is exact.
func TestGroupHandOffSplitsExactly(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 3, Balance: ad.BalanceHandOff})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	dialEcho(t, addr, 30)
	st := stats(t, g)
	for _, s := range st {
		if s.Served != 10 {
			t.Errorf("loop %d served %d, want 10 (all: %v)", s.Loop, s.Served, servedOf(st))
		}
	}
	if st[0].Accepted != 30 || st[1].Accepted != 0 {
		t.Errorf("accepted %d and %d, want 30 on the acceptor and 0 elsewhere", st[0].Accepted, st[1].Accepted)
	}
}

// BalanceCPU serves (where connections land depends on the CPU the
// client's connect ran on).
func TestGroupCPUBalanceServes(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, ad.GroupConfig{Loops: all.Count(), Pin: true, Balance: ad.BalanceCPU})
	addr, err := g.Serve("tcp4", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	dialEcho(t, addr, 16)
	var total uint64
	for _, s := range stats(t, g) {
		total += s.Served
	}
	if total != 16 {
		t.Fatalf("%d connections served, want 16", total)
	}
}

// Serve on an address in use fails and leaves nothing listening; a second
// Serve on another port works beside the first.
func TestGroupServeErrors(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 2})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := g.Serve("tcp", taken.Addr().String(), ad.HandleConns(echoHandler)); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("Serve on a taken port: %v, want EADDRINUSE", err)
	}
	if _, err := g.Serve("unix", "/tmp/x.sock", ad.HandleConns(echoHandler)); err == nil {
		t.Fatal("Serve on a Unix socket with SO_REUSEPORT succeeded")
	}
	if _, err := g.Serve("tcp", "127.0.0.1:0", nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatalf("nil newService: %v", err)
	}
	a1, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	dialEcho(t, a1, 4)
	dialEcho(t, a2, 4)
	for _, s := range stats(t, g) {
		if s.Descriptors < 2 {
			t.Errorf("loop %d has %d descriptors, want its 2 listeners at least", s.Loop, s.Descriptors)
		}
	}
}

// Shutdown with echo traffic in flight: every byte sent before the
// shutdown began (and after: the connections are let finish) comes back;
// Shutdown returns nil well before its deadline.
func TestGroupShutdownLosesNoByte(t *testing.T) {
	for _, bal := range []ad.Balance{ad.BalanceReusePort, ad.BalanceHandOff} {
		t.Run(bal.String(), func(t *testing.T) {
			g := newGroup(t, ad.GroupConfig{Loops: 2, Balance: bal})
			addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
			if err != nil {
				t.Fatal(err)
			}
			const clients = 16
			conns := dialEcho(t, addr, clients) // all accepted and served
			var shutting atomic.Bool
			type result struct {
				before, sent, got int
				err               error
			}
			results := make(chan result, clients)
			started := make(chan struct{}, clients)
			for i, c := range conns {
				go func() {
					var r result
					defer func() { results <- r }()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					var (
						recv bytes.Buffer
						wg   sync.WaitGroup
					)
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, r.err = io.Copy(&recv, c)
					}()
					var sent bytes.Buffer
					msg := bytes.Repeat([]byte{byte('a' + i)}, 1000)
					for k := 0; ; k++ {
						if k == 3 {
							started <- struct{}{}
						}
						stop := shutting.Load()
						msg[0] = byte(k)
						if _, err := c.Write(msg); err != nil {
							r.err = err
							break
						}
						sent.Write(msg)
						if !stop {
							r.before = sent.Len()
						} else if k > 50 {
							break
						}
					}
					c.(*net.TCPConn).CloseWrite()
					wg.Wait()
					r.sent, r.got = sent.Len(), recv.Len()
					if r.err == nil && !bytes.Equal(recv.Bytes(), sent.Bytes()) {
						r.err = errors.New("echoed bytes differ from those sent")
					}
				}()
			}
			for range conns {
				<-started
			}
			shutting.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			if err := g.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v (after %v)", err, time.Since(t0))
			}
			for range conns {
				r := <-results
				if r.err != nil || r.got != r.sent || r.before == 0 {
					t.Errorf("client: before %d, sent %d, echoed %d, err %v", r.before, r.sent, r.got, r.err)
				}
			}
			if _, err := net.Dial("tcp", addr); err == nil {
				t.Error("a connection was accepted after Shutdown")
			}
			if err := g.Shutdown(ctx); !errors.Is(err, ad.ErrClosed) {
				t.Errorf("second Shutdown: %v, want ErrClosed", err)
			}
		})
	}
}

// A connection that never ends is dropped when Shutdown's deadline
// passes, and Shutdown says so.
func TestGroupShutdownDeadlineDropsConnections(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 2})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	conns := dialEcho(t, addr, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes from a dropped connection", n)
		} else if isNetTimeout(err) {
			t.Fatal("the connection was not dropped")
		}
	}
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A callback's panic on one loop stops that loop only: the failure is
// reported (Failures, OnFailure, Stats), and the other loop serves every
// new connection (the failed loop's listener is closed with it, so the
// kernel stops choosing it).
func TestGroupPanicInOneLoopIsContained(t *testing.T) {
	reported := make(chan ad.LoopFailure, 4)
	g := newGroup(t, ad.GroupConfig{Loops: 2, OnFailure: func(f ad.LoopFailure) { reported <- f }})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	dialEcho(t, addr, 8)
	if err := g.Loop(1).CallSoonThreadSafe(func() { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	f := <-reported
	var pe *ad.PanicError
	if f.Loop != 1 || !f.Stopped || !errors.As(f, &pe) || pe.Value != "boom" {
		t.Fatalf("reported %+v", f)
	}
	<-g.Loop(1).Done()
	conns := dialEcho(t, addr, 32)
	st := stats(t, g)
	if !st[1].Stopped || st[1].Failures != 1 || st[0].Stopped {
		t.Fatalf("stats after the failure: %+v", st)
	}
	if fs := g.Failures(); len(fs) != 1 || fs[0].Loop != 1 {
		t.Fatalf("Failures: %v", fs)
	}
	for _, c := range conns {
		roundTrip(t, c, []byte("still there"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	g.Shutdown(ctx) // skips the stopped loop
}

// A handler's panic is a failure of its loop (BalanceHandOff makes the
// second connection land on loop 1).
func TestGroupHandlerPanicStopsItsLoop(t *testing.T) {
	reported := make(chan ad.LoopFailure, 4)
	g := newGroup(t, ad.GroupConfig{Loops: 2, Balance: ad.BalanceHandOff, OnFailure: func(f ad.LoopFailure) { reported <- f }})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(func(co *ad.Coro, conn ad.AsyncFD) error {
		buf := make([]byte, 16)
		n, err := co.RecvInto(conn, buf, ad.DefaultFlags)
		if err != nil || n == 0 {
			return err
		}
		if string(buf[:n]) == "boom" {
			panic("handler boom")
		}
		if err := co.Send(conn, buf[:n], ad.DefaultFlags); err != nil {
			return err
		}
		return echoHandler(co, conn)
	}))
	if err != nil {
		t.Fatal(err)
	}
	c0 := dialEcho(t, addr, 1)[0]
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.Write([]byte("boom"))
	f := <-reported
	var pe *ad.PanicError
	if f.Loop != 1 || !f.Stopped || !errors.As(f, &pe) || pe.Value != "handler boom" {
		t.Fatalf("reported %+v", f)
	}
	roundTrip(t, c0, []byte("loop 0 goes on"))
	dialEcho(t, addr, 6) // all on loop 0 now
	st := stats(t, g)
	if st[0].Served != 7 {
		t.Fatalf("loop 0 served %d, want 7", st[0].Served)
	}
}

// A Poll error (epoll_wait failing) on one loop stops that loop only.
func TestGroupPollErrorInOneLoopIsContained(t *testing.T) {
	in := faults.Install(t)
	reported := make(chan ad.LoopFailure, 4)
	g := newGroup(t, ad.GroupConfig{Loops: 2, OnFailure: func(f ad.LoopFailure) { reported <- f }})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	epfd := make(chan int, 1)
	g.Loop(1).CallSoonThreadSafe(func() { epfd <- g.Loop(1).GetIoHandler() })
	in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{<-epfd}, Err: unix.EBADF})
	g.Loop(1).CallSoonThreadSafe(func() {}) // wake it into its next wait
	f := <-reported
	if f.Loop != 1 || !f.Stopped || !errors.Is(f, unix.EBADF) {
		t.Fatalf("reported %+v", f)
	}
	<-g.Loop(1).Done()
	dialEcho(t, addr, 16)
	st := stats(t, g)
	if !st[1].Stopped || st[0].Served != 16 {
		t.Fatalf("stats: %+v", st)
	}
}

// The counters move with the traffic and are read without a race (this
// test is meant for -race: the loops write them while Stats runs).
func TestGroupStatsUnderLoad(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 2})
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(echoHandler))
	if err != nil {
		t.Fatal(err)
	}
	conns := dialEcho(t, addr, 8)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				roundTrip(t, c, []byte("ping"))
			}
		}()
	}
	var last []ad.LoopStats
	for i := 0; i < 20; i++ {
		last = stats(t, g)
	}
	close(stop)
	wg.Wait()
	var ops, rounds uint64
	for _, s := range last {
		ops += s.Operations
		rounds += s.Rounds
		if s.Busy <= 0 && s.Served > 0 {
			t.Errorf("loop %d served connections with no busy time: %+v", s.Loop, s)
		}
	}
	if ops == 0 || rounds == 0 {
		t.Fatalf("no operations or rounds counted: %+v", last)
	}
}

// A Stats that cannot get an answer in time says so instead of blocking.
func TestGroupStatsHonoursContext(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 2})
	release := make(chan struct{})
	g.Loop(1).CallSoonThreadSafe(func() { <-release })
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	st, err := g.Stats(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || len(st) != 2 || st[1].Loop != 1 {
		t.Fatalf("Stats: %v, %+v", err, st)
	}
}
