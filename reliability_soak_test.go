package asyncdispatch_test

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

// Load and soak: many connection lifecycles, and sustained echo traffic,
// with the process's descriptors, goroutines and memory sampled before
// and after (they must return to the baseline) and every byte checked on
// both ends. Loopback only, bounded in count and time.
//
// The default is a short form for every `go test`. The long form runs
// with -soak or ASYNCDISPATCH_SOAK=1 (README "Long runs"):
//
//	go test -run Soak -v -soak -timeout 30m .
//
// ASYNCDISPATCH_SOAK_CYCLES, _CONNS and _DURATION override the long
// form's figures.

var soakFlag = flag.Bool("soak", false, "run the long forms of the soak tests (also ASYNCDISPATCH_SOAK=1)")

// soakSize picks the short, race-detector or long form of a figure.
func soakSize(short, race, long int, env string) int {
	if v := os.Getenv(env); v != "" && longSoak() {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	switch {
	case longSoak():
		return long
	case socketRace:
		return race
	}
	return short
}

func longSoak() bool { return *soakFlag || os.Getenv("ASYNCDISPATCH_SOAK") == "1" }

// soakDuration is the long echo soak's duration (default one minute).
func soakDuration() time.Duration {
	if v := os.Getenv("ASYNCDISPATCH_SOAK_DURATION"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return time.Minute
}

// memSlack is how far RSS and heap may stay above the baseline after a
// run: generous, as the runtime keeps memory it has used.
const memSlack = 64 << 20

// server is a dispatcher running on a goroutine of its own, serving a
// listener with handle, one async procedure per connection.
type server struct {
	d    *ad.Dispatcher
	port int
	done chan error
	// Loop-owned until done is closed: connections served, bytes seen,
	// the XOR of every connection's CRC-32, and the first error.
	conns, bytes int
	crcs         uint32
	err          error
}

func startServer(t *testing.T, handle func(s *server, co *ad.Coro, fd ad.AsyncFD) error) *server {
	t.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
	s := &server{d: d, port: port, done: make(chan error, 1)}
	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for {
			fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
			if err != nil {
				return ad.Void{}, err
			}
			s.conns++
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				defer d.CloseSocket(fd)
				if err := handle(s, co, fd); err != nil && s.err == nil && !errors.Is(err, ad.ErrClosed) {
					s.err = err
				}
				return ad.Void{}, nil
			})
		}
	})
	go func() { s.done <- d.RunForever() }()
	return s
}

// stop closes the server's dispatcher from its own goroutine and waits
// for the loop to end.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.d.CallSoonThreadSafe(func() { s.d.Close() }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("server loop: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("server loop did not stop")
	}
	if s.err != nil {
		t.Fatalf("server: %v", s.err)
	}
}

// readToEOF reads fd until end of file into buf's backing (grown as
// needed).
func readToEOF(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD, buf []byte) ([]byte, error) {
	var got []byte
	for {
		n, err := ad.Await(co, d.RecvInto(fd, buf, ad.DefaultFlags))
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, nil
		}
		got = append(got, buf[:n]...)
	}
}

// Connection lifecycles: each cycle dials, sends a request of random size
// and half-closes; the server reads it to end of file, answers with the
// request's CRC-32 and the request itself, and closes first; the client
// checks the answer and closes. 5,000 cycles by default, 100,000 in the
// long form, 32 at a time.
func TestSoakConnectionCycles(t *testing.T) {
	cycles := soakSize(5000, 1000, 100000, "ASYNCDISPATCH_SOAK_CYCLES")
	const parallel = 32
	before := takeSample()
	srv := startServer(t, func(s *server, co *ad.Coro, fd ad.AsyncFD) error {
		req, err := readToEOF(co, s.d, fd, make([]byte, 4096))
		if err != nil {
			return err
		}
		sum := crc32.ChecksumIEEE(req)
		s.bytes += len(req)
		s.crcs ^= sum
		reply := binary.BigEndian.AppendUint32(nil, sum)
		_, err = ad.Await(co, s.d.Send(fd, append(reply, req...), ad.DefaultFlags))
		return err
	})
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	var sent, crcs uint32
	sentBytes, peakFDs, peakActive := 0, 0, 0
	var peakRSS uint64
	tick, _ := d.AddTimer(50*time.Millisecond, false, func(ad.AsyncFD) bool {
		ents, _ := os.ReadDir("/proc/self/fd")
		peakFDs = max(peakFDs, len(ents))
		peakRSS = max(peakRSS, rss())
		return false
	})
	start := time.Now()
	var workers []*ad.Future[int]
	for w := 0; w < parallel; w++ {
		workers = append(workers, ad.Async(d, func(co *ad.Coro) (int, error) {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			buf := make([]byte, 4096)
			n := 0
			for i := w; i < cycles; i += parallel {
				fd, err := ad.Await(co, d.Dial("127.0.0.1", srv.port, unix.IPPROTO_TCP))
				if err != nil {
					return n, fmt.Errorf("cycle %d: dial: %w", i, err)
				}
				req := payload(uint64(i), 1+rng.IntN(2048))
				if _, err := ad.Await(co, d.Send(fd, req, ad.DefaultFlags)); err != nil {
					d.CloseSocket(fd)
					return n, fmt.Errorf("cycle %d: send: %w", i, err)
				}
				unix.Shutdown(int(fd), unix.SHUT_WR)
				reply, err := readToEOF(co, d, fd, buf)
				d.CloseSocket(fd)
				if err != nil {
					return n, fmt.Errorf("cycle %d: receive: %w", i, err)
				}
				sum := crc32.ChecksumIEEE(req)
				if len(reply) != 4+len(req) || binary.BigEndian.Uint32(reply) != sum || crc32.ChecksumIEEE(reply[4:]) != sum {
					return n, fmt.Errorf("cycle %d: %d-byte reply to a %d-byte request, checksum mismatch", i, len(reply), len(req))
				}
				sent ^= sum
				crcs ^= crc32.ChecksumIEEE(reply[4:])
				sentBytes += len(req)
				peakActive = max(peakActive, d.ActiveDescriptors())
				n++
			}
			return n, nil
		}))
	}
	counts, err := ad.WaitFor(ad.Timeout(ad.All(workers...), 10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	tick.Stop()
	done := 0
	for _, n := range counts {
		done += n
	}
	mid := takeSample()
	d.Close()
	srv.stop(t)
	after := backToBaseline(t, before, memSlack)
	if done != cycles || srv.conns != cycles {
		t.Fatalf("%d cycles done, server saw %d connections; want %d", done, srv.conns, cycles)
	}
	if srv.crcs != sent || crcs != sent || srv.bytes != sentBytes {
		t.Fatalf("checksums: client sent %08x, server saw %08x (%d of %d bytes), client got back %08x", sent, srv.crcs, srv.bytes, sentBytes, crcs)
	}
	t.Logf("figures: connection cycles: %d cycles (%d at a time) in %v, %.0f/s; %d request bytes, each checked on both ends, 0 lost; peak fds %d, peak active descriptors %d, peak RSS %.1f MiB; before: %v; at the end, dispatchers open: %v; after: %v",
		cycles, parallel, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds(), sentBytes, peakFDs, peakActive, float64(peakRSS)/(1<<20), before, mid, after)
}

// Sustained echo traffic: conns connections, each with a sender
// streaming messages of random sizes (up to 16 KiB) and a receiver
// checking the echoed stream byte for byte, both running at once (full
// duplex, up to a window of bytes in flight). The server keeps a CRC-32
// per connection of what it echoed; the client compares it with its own.
// The short form sends a fixed number of messages; the long form runs
// for ASYNCDISPATCH_SOAK_DURATION (default 1 minute).
func TestSoakEcho(t *testing.T) {
	conns := soakSize(32, 8, 256, "ASYNCDISPATCH_SOAK_CONNS")
	msgs := soakSize(200, 50, 0, "")
	var until time.Duration
	if longSoak() {
		until = soakDuration()
	}
	raiseNOFILE(t, uint64(2*conns+256))
	runEchoSoak(t, "echo", conns, msgs, until, nil)
}

// The echo soak again, with faults injected all the while: EINTR on
// every seventh call, EAGAIN on every fifth receive and send, and short
// transfers on every third. The load is held and nothing is lost.
func TestSoakEchoUnderFaults(t *testing.T) {
	in := faults.Install(t)
	for _, op := range []faults.Op{faults.Recv, faults.Send, faults.Accept, faults.EpollWait, faults.Read, faults.Write} {
		in.Add(&faults.Rule{Op: op, Every: 7, Err: unix.EINTR})
	}
	in.Add(&faults.Rule{Op: faults.Recv, Every: 5, Err: unix.EAGAIN})
	in.Add(&faults.Rule{Op: faults.Send, Every: 5, Err: unix.EAGAIN})
	in.Add(&faults.Rule{Op: faults.Recv, Every: 3, Short: 100})
	in.Add(&faults.Rule{Op: faults.Send, Every: 3, Short: 100})
	in.Add(&faults.Rule{Op: faults.Connect, Err: unix.EINTR, Real: true})
	conns := soakSize(16, 4, 128, "ASYNCDISPATCH_SOAK_CONNS")
	msgs := soakSize(100, 25, 0, "")
	var until time.Duration
	if longSoak() {
		until = soakDuration() / 2
	}
	raiseNOFILE(t, uint64(2*conns+256))
	runEchoSoak(t, "echo under faults", conns, msgs, until, in)
}

func runEchoSoak(t *testing.T, name string, conns, msgs int, until time.Duration, in *faults.Injector) {
	before := takeSample()
	srv := startServer(t, func(s *server, co *ad.Coro, fd ad.AsyncFD) error {
		buf := make([]byte, 16<<10)
		var sum uint32
		for {
			n, err := ad.Await(co, s.d.RecvInto(fd, buf, ad.DefaultFlags))
			if err != nil {
				return err
			}
			if n == 0 {
				s.crcs ^= sum
				return nil
			}
			sum = crc32.Update(sum, crc32.IEEETable, buf[:n])
			s.bytes += n
			if _, err := ad.Await(co, s.d.Send(fd, buf[:n], ad.DefaultFlags)); err != nil {
				return err
			}
		}
	})
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deadline := start.Add(until)
	const window = 256 << 10 // bytes in flight per connection
	var (
		sentMsgs, sentBytes int
		crcs                uint32
	)
	peakFDs := 0
	var peakRSS uint64
	tick, _ := d.AddTimer(100*time.Millisecond, false, func(ad.AsyncFD) bool {
		ents, _ := os.ReadDir("/proc/self/fd")
		peakFDs = max(peakFDs, len(ents))
		peakRSS = max(peakRSS, rss())
		return false
	})
	var all []*ad.Future[int]
	for c := 0; c < conns; c++ {
		all = append(all, ad.Async(d, func(co *ad.Coro) (int, error) {
			fd, err := ad.Await(co, d.Dial("127.0.0.1", srv.port, unix.IPPROTO_TCP))
			if err != nil {
				return 0, err
			}
			defer d.CloseSocket(fd)
			// The stream is a pseudo-random byte sequence, generated
			// again on the receiving side to check it.
			seed := uint64(c) + 1000
			sizes := rand.New(rand.NewPCG(seed, 8))
			gen := rand.New(rand.NewPCG(seed, 7))
			check := rand.New(rand.NewPCG(seed, 7))
			var inFlight, received int
			var sum uint32
			room := ad.NewFutureStream[ad.Void](d, "window")
			sender := ad.Async(d, func(co *ad.Coro) (int, error) {
				n := 0
				for (msgs > 0 && n < msgs) || (msgs == 0 && time.Now().Before(deadline)) {
					msg := make([]byte, 1+sizes.IntN(16<<10))
					for i := range msg {
						msg[i] = byte(gen.Uint32())
					}
					for inFlight+len(msg) > window {
						if _, err := ad.Await(co, room.Read()); err != nil {
							return n, err
						}
					}
					inFlight += len(msg)
					sum = crc32.Update(sum, crc32.IEEETable, msg)
					if _, err := ad.Await(co, d.Send(fd, msg, ad.DefaultFlags)); err != nil {
						return n, err
					}
					sentBytes += len(msg)
					n++
				}
				unix.Shutdown(int(fd), unix.SHUT_WR)
				return n, nil
			})
			buf := make([]byte, 32<<10)
			for {
				k, err := ad.Await(co, d.RecvInto(fd, buf, ad.DefaultFlags))
				if err != nil {
					return 0, err
				}
				if k == 0 {
					break
				}
				for i, b := range buf[:k] {
					if want := byte(check.Uint32()); b != want {
						return 0, fmt.Errorf("connection %d: byte %d is %#x, want %#x", c, received+i, b, want)
					}
				}
				received += k
				inFlight -= k
				if room.Len() == 0 {
					room.Write(ad.Void{})
				}
			}
			n, err := ad.Await(co, sender)
			if err != nil {
				return 0, err
			}
			if inFlight != 0 {
				return 0, fmt.Errorf("connection %d: %d bytes sent were never echoed", c, inFlight)
			}
			sentMsgs += n
			crcs ^= sum
			return received, nil
		}))
	}
	limit := 10*time.Minute + until
	got, err := ad.WaitFor(ad.Timeout(ad.All(all...), limit))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	tick.Stop()
	received := 0
	for _, n := range got {
		received += n
	}
	faultsLine := ""
	if in != nil {
		in.Reset()
		faultsLine = fmt.Sprintf("; %d faults injected and survived (%s)", in.TotalInjected(), in.Summary())
	}
	d.Close()
	srv.stop(t)
	after := backToBaseline(t, before, memSlack)
	if received != sentBytes || srv.bytes != sentBytes || srv.crcs != crcs || srv.conns != conns {
		t.Fatalf("sent %d bytes (crc %08x), server echoed %d (crc %08x) on %d connections, client received %d",
			sentBytes, crcs, srv.bytes, srv.crcs, srv.conns, received)
	}
	t.Logf("figures: %s: %d connections, %d messages, %d bytes each way in %v (%.1f MB/s echoed), every byte checked on both ends, 0 lost; peak fds %d, peak RSS %.1f MiB; before: %v; after: %v%s",
		name, conns, sentMsgs, sentBytes, elapsed.Round(time.Millisecond), float64(2*sentBytes)/elapsed.Seconds()/1e6, peakFDs, float64(peakRSS)/(1<<20), before, after, faultsLine)
}
