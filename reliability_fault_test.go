package asyncdispatch_test

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

// Fault injection: internal/testkit/faults replaces the system calls of
// internal/sys with ones that fail on command, and these tests show the
// loop recovering from each fault — nothing lost, nothing leaked, no
// error that should have been absorbed (EINTR, EAGAIN) ever surfacing.
// Every test logs a "figures:" line (go test -v -run Fault).

// echoPairs connects n client sockets to an echo server on d and returns
// the client ends with the servers' futures.
func echoPairs(t *testing.T, d *ad.Dispatcher, n int) ([]ad.AsyncFD, []*ad.Future[echoed]) {
	t.Helper()
	ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
	defer d.CloseSocket(ln)
	var cs []ad.AsyncFD
	var srvs []*ad.Future[echoed]
	for i := 0; i < n; i++ {
		acc := d.Accept(ln, ad.DefaultFlags, false)
		cs = append(cs, wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP)))
		srvs = append(srvs, echoConn(d, wait(t, acc), 512+i*997%8192))
	}
	return cs, srvs
}

// echoTraffic sends size checked bytes on each client concurrently, reads
// the echo back, half-closes, and checks both ends' checksums: the bytes
// sent, the bytes the server saw, and the bytes that came back.
func echoTraffic(t *testing.T, d *ad.Dispatcher, cs []ad.AsyncFD, srvs []*ad.Future[echoed], size int, seed uint64) (bytesMoved int) {
	t.Helper()
	var sends []*ad.Future[ad.Void]
	var recvs []*ad.Future[[]byte]
	datas := make([][]byte, len(cs))
	for i, c := range cs {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		datas[i] = payload(seed+uint64(i), size)
		sends = append(sends, sendChunks(d, c, datas[i], rng, 16<<10, ad.DefaultFlags))
		recvs = append(recvs, recvAll(d, c, -1, rng, 8<<10, ad.DefaultFlags))
	}
	for i, c := range cs {
		wait(t, sends[i])
		if err := unix.Shutdown(int(c), unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
	}
	for i := range cs {
		got := wait(t, recvs[i])
		e := wait(t, srvs[i])
		sameBytes(t, fmt.Sprintf("connection %d echo", i), got, datas[i])
		if want := crc32.ChecksumIEEE(datas[i]); e.n != len(datas[i]) || e.crc != want {
			t.Fatalf("connection %d: server saw %d bytes crc %08x, client sent %d crc %08x", i, e.n, e.crc, len(datas[i]), want)
		}
		bytesMoved += 2 * len(got)
		d.CloseSocket(cs[i])
	}
	return bytesMoved
}

// EINTR on every second call of every interruptible system call: the
// socket calls retry, a connect goes on in the kernel, epoll_wait resumes
// waiting, the waker's write retries and its read is made again on the
// next round. TCP echo, UDP datagrams, timers and cross-goroutine wakes
// all come through intact.
func TestFaultEINTREverywhere(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	for _, op := range []faults.Op{faults.Recv, faults.Send, faults.Accept, faults.EpollWait, faults.Read, faults.Write} {
		in.Add(&faults.Rule{Op: op, Every: 2, Err: unix.EINTR})
	}
	// A signal during connect(2): the attempt goes on in the kernel.
	in.Add(&faults.Rule{Op: faults.Connect, Err: unix.EINTR, Real: true})

	cs, srvs := echoPairs(t, d, 8)
	moved := echoTraffic(t, d, cs, srvs, 128<<10, 1)

	// Datagrams, both ways, with RecvFromInto and SendTo.
	srv, port := listen(t, d, "udp4", "127.0.0.1:0")
	cli, _ := listen(t, d, "udp4", "127.0.0.1:0")
	to := mustAddrPort("127.0.0.1", port)
	buf := make([]byte, 2048)
	for i := 0; i < 200; i++ {
		msg := payload(uint64(i), 1+i*7%1400)
		rf := d.RecvFromInto(srv, buf, 0)
		wait(t, d.SendTo(cli, msg, to, 0))
		r := wait(t, rf)
		sameBytes(t, "datagram", buf[:r.N], msg)
		moved += len(msg)
	}
	d.CloseSocket(srv)
	d.CloseSocket(cli)

	// Wakes from another goroutine (the waker's write and read).
	const wakes = 200
	got := 0
	ext := ad.NewExternalFuture[int](d, "wakes")
	go func() {
		for i := 0; i < wakes; i++ {
			if err := d.CallSoonThreadSafe(func() {
				if got++; got == wakes {
					ext.Complete(got)
				}
			}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	if n := wait(t, ext); n != wakes {
		t.Fatalf("%d of %d cross-goroutine callbacks ran", n, wakes)
	}
	// Timers across interrupted waits: never early.
	start := time.Now()
	wait(t, d.SleepAsync(30*time.Millisecond))
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("a 30 ms sleep ended after %v", el)
	}

	for _, op := range []faults.Op{faults.Recv, faults.Send, faults.Accept, faults.Connect, faults.EpollWait, faults.Read, faults.Write} {
		if in.Injected(op) == 0 {
			t.Errorf("no EINTR injected into %v", op)
		}
	}
	t.Logf("figures: EINTR: %d faults injected and survived (%s); %d bytes checked, 0 lost", in.TotalInjected(), in.Summary(), moved)
}

// EAGAIN storms: three of every four receives and sends fail with EAGAIN
// although the socket is ready, and one receive is refused a thousand
// times in a row. The operations stay queued and in order, the loop keeps
// turning (level-triggered readiness brings them back) without blocking,
// and every byte arrives.
func TestFaultEAGAINStorms(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	for _, op := range []faults.Op{faults.Recv, faults.Send, faults.Accept} {
		in.Add(&faults.Rule{Op: op, Every: 4}) // every fourth call goes through...
		in.Add(&faults.Rule{Op: op, Err: unix.EAGAIN})
	}
	cs, srvs := echoPairs(t, d, 4)
	moved := echoTraffic(t, d, cs, srvs, 32<<10, 2)

	// Sends issued all at once stay in order through the storm.
	c, s := connPair(t, d)
	data := payload(3, 128<<10)
	rng := rand.New(rand.NewPCG(3, 3))
	sf := sendQueued(d, c, data, rng, 4096, 0)
	rf := recvAll(d, s, len(data), rng, 3000, 0)
	wait(t, sf)
	sameBytes(t, "queued sends through an EAGAIN storm", wait(t, rf), data)
	moved += len(data)

	// One receive refused a thousand times in a row: no stall, no error.
	in.Reset()
	storm := in.Add(&faults.Rule{Op: faults.Recv, FDs: []int{int(s)}, Limit: 1000, Err: unix.EAGAIN})
	d.SendString(c, "after the storm", 0)
	start := time.Now()
	if got := wait(t, d.RecvString(s, 100, 0)); got != "after the storm" {
		t.Fatalf("after 1000 EAGAINs: %q", got)
	}
	if storm.Acted() != 1000 {
		t.Fatalf("storm acted %d times", storm.Acted())
	}
	t.Logf("a receive refused 1000 times in a row completed after %v", time.Since(start))
	d.CloseSocket(c)
	d.CloseSocket(s)
	t.Logf("figures: EAGAIN storms: %d faults injected and survived (%s); %d bytes checked, 0 lost", in.TotalInjected(), in.Summary(), moved)
}

// Short transfers: every receive and send moves at most a few bytes. Many
// sends queued at once still go out whole and in order, never
// interleaved.
func TestFaultShortTransfers(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	in.Add(&faults.Rule{Op: faults.Recv, Short: 3})
	in.Add(&faults.Rule{Op: faults.Send, Short: 7})
	c, s := connPair(t, d)
	data := payload(4, 48<<10)
	rng := rand.New(rand.NewPCG(4, 4))
	sf := sendQueued(d, c, data, rng, 1000, 0)
	rf := recvAll(d, s, len(data), rng, 500, 0)
	wait(t, sf)
	sameBytes(t, "short transfers", wait(t, rf), data)
	d.CloseSocket(c)
	d.CloseSocket(s)
	t.Logf("figures: short transfers: %d faults injected and survived (%s); %d bytes checked, 0 lost", in.TotalInjected(), in.Summary(), len(data))
}

// ENOBUFS on send: the one operation that hit it fails with the errno (an
// *os.SyscallError), nothing of it is written, the operations around it
// are unaffected, and the loop goes on. On a datagram socket exactly the
// refused datagrams are missing; on a stream the peer receives exactly
// the bytes of the sends that succeeded.
func TestFaultENOBUFSOnSend(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)

	srv, port := listen(t, d, "udp4", "127.0.0.1:0")
	cli, _ := listen(t, d, "udp4", "127.0.0.1:0")
	in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(cli)}, Every: 3, Err: unix.ENOBUFS})
	to := mustAddrPort("127.0.0.1", port)
	const n = 300
	var sent []int
	failed := 0
	for i := 0; i < n; i++ {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		_, err := ad.WaitFor(d.SendTo(cli, msg, to, ad.DefaultFlags))
		switch {
		case err == nil:
			sent = append(sent, i)
		case errors.Is(err, syscall.ENOBUFS):
			var se *os.SyscallError
			if !errors.As(err, &se) || se.Syscall != "sendto" {
				t.Fatalf("ENOBUFS error %#v, want an *os.SyscallError of sendto", err)
			}
			failed++
		default:
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	buf := make([]byte, 100)
	for _, i := range sent {
		r := wait(t, d.RecvFromInto(srv, buf, 0))
		if got, want := string(buf[:r.N]), fmt.Sprintf("datagram %d", i); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
	if f := d.RecvFromInto(srv, buf, 0); f.Finished() {
		t.Fatalf("an extra datagram arrived: %v", f)
	} else {
		f.Cancel()
	}
	if failed != n/3 {
		t.Fatalf("%d datagrams failed, want %d", failed, n/3)
	}
	d.CloseSocket(srv)
	d.CloseSocket(cli)

	// A stream: small sends, each one system call; every fifth is refused.
	c, s := connPair(t, d)
	in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(c)}, Every: 5, Err: unix.ENOBUFS})
	var want []byte
	for i := 0; i < 200; i++ {
		msg := payload(uint64(i), 100+i)
		if _, err := ad.WaitFor(d.Send(c, msg, ad.DefaultFlags)); err == nil {
			want = append(want, msg...)
		} else if !errors.Is(err, syscall.ENOBUFS) {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	unix.Shutdown(int(c), unix.SHUT_WR)
	sameBytes(t, "stream around refused sends", wait(t, recvAll(d, s, -1, rand.New(rand.NewPCG(5, 5)), 4096, 0)), want)
	d.CloseSocket(c)
	d.CloseSocket(s)
	t.Logf("figures: ENOBUFS: %d faults injected and survived (%s); %d datagrams and %d stream bytes checked, 0 lost",
		in.TotalInjected(), in.Summary(), len(sent), len(want))
}

// A connection reset in the middle of a large send. The first send(2)
// writes 64 KiB, then the socket says ECONNRESET to every send and
// receive. Without SafeDisconn the send, the sends queued behind it and a
// pending receive fail with ECONNRESET; with SafeDisconn the sends
// complete and the receive sees end of file. Either way the peer got
// exactly the 64 KiB that were written, and a second connection on the
// same loop is unaffected.
func TestFaultResetMidSend(t *testing.T) {
	for _, flags := range []ad.SocketFlag{0, ad.SafeDisconn} {
		t.Run(fmt.Sprintf("flags=%d", flags), func(t *testing.T) {
			in := faults.Install(t)
			d := newCheckedD(t)
			c, s := connPair(t, d)
			other, otherSrv := connPair(t, d)
			data := payload(6, 4<<20)
			in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(c)}, Limit: 1, Short: 64 << 10})
			in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(c)}, Skip: 1, Err: unix.ECONNRESET})
			in.Add(&faults.Rule{Op: faults.Recv, FDs: []int{int(c)}, Err: unix.ECONNRESET})
			big := d.Send(c, data, flags)
			behind := d.SendString(c, "queued behind", flags)
			rf := d.Recv(c, 10, flags)
			if big.Finished() {
				t.Fatal("4 MiB send finished at once")
			}
			// The other connection keeps working meanwhile.
			wait(t, d.SendString(other, "still here", 0))
			if got := wait(t, d.RecvString(otherSrv, 100, 0)); got != "still here" {
				t.Fatalf("other connection: %q", got)
			}
			if flags&ad.SafeDisconn != 0 {
				wait(t, big)
				wait(t, behind)
				if got := wait(t, rf); len(got) != 0 {
					t.Fatalf("SafeDisconn receive after the reset: %q", got)
				}
			} else {
				for i, err := range []error{waitErr(t, big), waitErr(t, behind), waitErr(t, rf)} {
					var se *os.SyscallError
					if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &se) {
						t.Fatalf("operation %d after the reset: %v, want ECONNRESET", i, err)
					}
				}
			}
			in.Reset()
			d.CloseSocket(c)
			got := wait(t, recvAll(d, s, -1, rand.New(rand.NewPCG(6, 6)), 32<<10, ad.DefaultFlags))
			sameBytes(t, "bytes before the reset", got, data[:64<<10])
			for _, fd := range []ad.AsyncFD{s, other, otherSrv} {
				d.CloseSocket(fd)
			}
			t.Logf("figures: reset mid-send (flags %d): %d faults injected and survived; %d bytes checked, 0 lost", flags, in.TotalInjected(), len(got))
		})
	}
}

// Half-close under faults: the client sends 1 MiB and shuts down its
// sending side while receives are refused (EAGAIN) and interrupted
// (EINTR) now and then; the server reads to end of file — and again, end
// of file every time — then answers with a checksum and its own 1 MiB,
// and closes. The other direction half-closes first in the second round.
func TestFaultHalfClose(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	in.Add(&faults.Rule{Op: faults.Recv, Every: 3, Err: unix.EAGAIN})
	in.Add(&faults.Rule{Op: faults.Recv, Every: 5, Err: unix.EINTR})
	in.Add(&faults.Rule{Op: faults.Send, Every: 4, Short: 1000})
	moved := 0
	for round, serverFirst := range []bool{false, true} {
		c, s := connPair(t, d)
		first, second := c, s
		if serverFirst {
			first, second = s, c
		}
		req := payload(uint64(10+round), 1<<20)
		resp := payload(uint64(20+round), 1<<20)
		rng := rand.New(rand.NewPCG(7, uint64(round)))
		wait(t, sendChunks(d, first, req, rng, 64<<10, 0))
		if err := unix.Shutdown(int(first), unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		got := wait(t, recvAll(d, second, -1, rng, 32<<10, 0))
		sameBytes(t, "request before end of file", got, req)
		for i := 0; i < 3; i++ {
			if b := wait(t, d.Recv(second, 10, 0)); len(b) != 0 {
				t.Fatalf("end of file again: %q", b)
			}
		}
		// The half-closed side still receives.
		sum := fmt.Sprintf("%08x", crc32.ChecksumIEEE(got))
		wait(t, d.SendString(second, sum, 0))
		wait(t, sendChunks(d, second, resp, rng, 64<<10, 0))
		d.CloseSocket(second)
		back := wait(t, recvAll(d, first, -1, rng, 32<<10, 0))
		if string(back[:8]) != fmt.Sprintf("%08x", crc32.ChecksumIEEE(req)) {
			t.Fatalf("checksum from the peer %q", back[:8])
		}
		sameBytes(t, "response after half-close", back[8:], resp)
		d.CloseSocket(first)
		moved += len(req) + len(resp)
	}
	t.Logf("figures: half-close: %d faults injected and survived (%s); %d bytes checked, 0 lost", in.TotalInjected(), in.Summary(), moved)
}

// epoll_wait itself failing (EBADF, EINVAL: a broken invariant of the
// kernel's, not of the program's) is returned by Poll as an
// *os.SyscallError, once; the next Poll works, and so does a WaitFor
// that was interrupted by it.
func TestFaultEpollWaitError(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	in.Add(&faults.Rule{Op: faults.EpollWait, FDs: []int{d.GetIoHandler()}, Limit: 1, Err: unix.EINVAL})
	sl := d.SleepAsync(5 * time.Millisecond)
	_, err := ad.WaitFor(sl)
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "epoll_wait" || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("WaitFor with epoll_wait failing: %v", err)
	}
	if _, err := ad.WaitFor(sl); err != nil {
		t.Fatalf("WaitFor after the failure: %v", err)
	}
	// And epoll_ctl refusing to watch another descriptor (ENOSPC:
	// fs.epoll.max_user_watches reached): the operation that needed the
	// watch fails with the errno, nothing stays pending, and once the
	// limit is gone the same socket works.
	c, s := connPair(t, d)
	rule := in.Add(&faults.Rule{Op: faults.EpollCtl, FDs: []int{int(s)}, Err: unix.ENOSPC})
	rf := d.Recv(s, 10, 0)
	if err := rf.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Recv when epoll_ctl fails: %v", err)
	}
	if d.ActiveDescriptors() != 0 || d.HasPendingOperations() {
		t.Fatalf("after a failed watch: active %d, pending %v", d.ActiveDescriptors(), d.HasPendingOperations())
	}
	if err := d.AddRead(s, func(ad.AsyncFD) bool { return true }); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("AddRead when epoll_ctl fails: %v", err)
	}
	in.Remove(rule)
	rs := d.RecvString(s, 10, 0)
	wait(t, d.SendString(c, "watched", 0))
	if got := wait(t, rs); got != "watched" {
		t.Fatalf("after the limit: %q", got)
	}
	d.CloseSocket(c)
	d.CloseSocket(s)
	t.Logf("figures: epoll_wait/epoll_ctl errors: %d faults injected and survived (%s)", in.TotalInjected(), in.Summary())
}

// Descriptors exhausted, then freed. accept4 failing with EMFILE, ENFILE,
// ENOBUFS or ENOMEM does not fail the accept and does not spin: the
// listener backs off, the episode is reported once, and the accepts
// complete when descriptors are back. socket(2) failing with EMFILE fails
// CreateAsyncNativeSocket, Listen and Dial with the errno, leaking
// nothing, and they work again at once when it stops. (Real exhaustion,
// with RLIMIT_NOFILE used up, is TestAcceptEMFILE.)
func TestFaultDescriptorsExhausted(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
	var reports []error
	d.SetAcceptErrorHandler(func(_ ad.AsyncFD, err error) { reports = append(reports, err) })
	for _, errno := range []unix.Errno{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		reports = nil
		r0 := ad.AcceptRetries(d)
		rule := in.Add(&faults.Rule{Op: faults.Accept, FDs: []int{int(ln)}, Limit: 3, Err: errno})
		acc := d.AcceptAddr(ln, ad.DefaultFlags, false)
		start := time.Now()
		c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
		r := wait(t, acc)
		took := time.Since(start)
		if r.Address != "127.0.0.1" || rule.Acted() != 3 {
			t.Fatalf("%v: accepted %q after %d injected failures", errno, r.Address, rule.Acted())
		}
		if len(reports) != 1 || !errors.Is(reports[0], errno) {
			t.Fatalf("%v: reports %v, want one", errno, reports)
		}
		// Back-off 10+20+40 ms: it waited, it did not spin.
		if retries := ad.AcceptRetries(d) - r0; retries != 3 || took < 70*time.Millisecond {
			t.Fatalf("%v: %d exhausted attempts in %v", errno, retries, took)
		}
		wait(t, d.SendString(c, "ok", 0))
		if got := wait(t, d.RecvString(r.Client, 10, 0)); got != "ok" {
			t.Fatalf("%v: accepted connection: %q", errno, got)
		}
		d.CloseSocket(c)
		d.CloseSocket(r.Client)
		in.Remove(rule)
		// An accept that finds the backlog empty ends the episode; the
		// next exhaustion is a new one, reported again.
		if f := d.Accept(ln, ad.DefaultFlags, false); f.Finished() {
			t.Fatalf("accept on an empty backlog: %v", f)
		} else {
			f.Cancel()
		}
	}

	fds0 := len(openFDs())
	rule := in.Add(&faults.Rule{Op: faults.Socket, Err: unix.EMFILE})
	if _, err := d.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, 0, false); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("CreateAsyncNativeSocket out of descriptors: %v", err)
	}
	if _, err := d.Listen("tcp4", "127.0.0.1:0"); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Listen out of descriptors: %v", err)
	}
	var ce *ad.ConnectError
	if err := waitErr(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP)); !errors.Is(err, syscall.EMFILE) || !errors.As(err, &ce) {
		t.Fatalf("Dial out of descriptors: %v", err)
	}
	if n := len(openFDs()); n != fds0 || d.RegisteredDescriptors() != 1 {
		t.Fatalf("out of descriptors: %d fds (had %d), %d registered", n, fds0, d.RegisteredDescriptors())
	}
	in.Remove(rule)
	acc := d.Accept(ln, ad.DefaultFlags, false)
	c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
	d.CloseSocket(wait(t, acc))
	d.CloseSocket(c)
	d.CloseSocket(ln)
	t.Logf("figures: descriptors exhausted: %d faults injected and survived (%s)", in.TotalInjected(), in.Summary())
}

// A connect that the kernel reports as failing at once (ECONNREFUSED
// from connect(2) itself, as for a Unix socket) and one that fails later
// (the attempt in progress, then SO_ERROR): Dial moves on to the next
// address either way and the failed attempts' sockets are closed.
func TestFaultConnectErrors(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	ln, port := listen(t, d, "tcp", "[::1]:0")
	ad.SetLookup(d, staticLookup("flaky.test", "127.0.0.1", "::1"))
	rule := in.Add(&faults.Rule{Op: faults.Connect, Limit: 1, Err: unix.ECONNREFUSED})
	acc := d.Accept(ln, ad.DefaultFlags, false)
	c := wait(t, d.Dial("flaky.test", port, unix.IPPROTO_TCP))
	if peer, _, _ := ad.GetPeerAddr(c); peer != "::1" || rule.Acted() != 1 {
		t.Fatalf("Dial after a refused attempt: peer %q, %d injected", peer, rule.Acted())
	}
	d.CloseSocket(wait(t, acc))
	d.CloseSocket(c)
	if d.RegisteredDescriptors() != 1 {
		t.Fatalf("%d descriptors registered; the failed attempt's socket is left", d.RegisteredDescriptors())
	}
	d.CloseSocket(ln)
	t.Logf("figures: connect errors: %d faults injected and survived", in.TotalInjected())
}

// A send that fails after writing part of its data poisons the stream:
// every later send on that socket fails with the same error, so the peer
// never receives a message cut short followed by the next one (a gap).
func TestFaultSendFailsMidwayNoGap(t *testing.T) {
	in := faults.Install(t)
	d := newCheckedD(t)
	c, s := connPair(t, d)
	first := payload(7, 1000)
	in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(c)}, Limit: 1, Short: 100})
	in.Add(&faults.Rule{Op: faults.Send, FDs: []int{int(c)}, Skip: 1, Limit: 1, Err: unix.ENOBUFS})
	f1 := d.Send(c, first, 0)
	f2 := d.Send(c, []byte("next message"), 0)
	if _, err := ad.WaitFor(f1); !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("first send: %v", err)
	}
	if _, err := ad.WaitFor(f2); !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("send after a broken one: %v (would leave a gap)", err)
	}
	unix.Shutdown(int(c), unix.SHUT_WR)
	got := wait(t, recvAll(d, s, -1, rand.New(rand.NewPCG(8, 8)), 4096, 0))
	sameBytes(t, "stream cut after a partial send", got, first[:100])
	d.CloseSocket(c)
	d.CloseSocket(s)
}
