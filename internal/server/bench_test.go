package server

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Benchmarks of the request paths, client and server on one dispatcher
// over loopback TCP, so that one op is one full round trip through the
// library on both sides (two sends, two receives, the coroutine switches
// and the epoll rounds between them). Each checks what came back. The
// client uses the allocation-free Coro forms, so allocs/op is the
// server's.

// loopSetup starts a server (serve) on a fresh dispatcher, closed when
// the test ends, and returns a client connection to it on the same
// dispatcher: benchmarks and allocation tests drive both ends from one
// loop.
func loopSetup(tb testing.TB, serve func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error)) (*ad.Dispatcher, *Server, ad.AsyncFD) {
	tb.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	ln, err := d.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := serve(d, ln)
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := ad.GetLocalAddr(ln)
	fd, err := ad.WaitFor(d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
	if err != nil {
		tb.Fatal(err)
	}
	unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return d, srv, fd
}

// roundTrips returns a function that makes n round trips to the server
// on fd from one async procedure on d: send req, then receive into buf
// until complete says what came is the whole answer. The allocation
// tests measure it with mallocsPerRound.
func roundTrips(t *testing.T, d *ad.Dispatcher, fd ad.AsyncFD, req, buf []byte, complete func(got []byte) bool) func(n int) {
	return func(n int) {
		f := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			for range n {
				if err := co.Send(fd, req, ad.DefaultFlags); err != nil {
					return ad.Void{}, err
				}
				for got := 0; !complete(buf[:got]); {
					k, err := co.RecvInto(fd, buf[got:], ad.DefaultFlags)
					if err != nil || k == 0 {
						t.Errorf("receive: %d, %v", k, err)
						return ad.Void{}, err
					}
					got += k
				}
			}
			return ad.Void{}, nil
		})
		ad.WaitFor(f)
	}
}

// mallocsPerRound warms up with round(100) (buffers, coroutine pool,
// timers), then returns the heap allocations per round trip of
// round(2000).
func mallocsPerRound(round func(n int)) float64 {
	round(100)
	const n = 2000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	round(n)
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / n
}

// pingPong sends msg and reads want() back, b.N times, from one async
// procedure.
func pingPong(b *testing.B, d *ad.Dispatcher, fd ad.AsyncFD, msg []byte, wantNow func() []byte) {
	b.Helper()
	buf := make([]byte, 4096)
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		for i := 0; i < b.N; i++ {
			if err := co.Send(fd, msg, ad.DefaultFlags); err != nil {
				return i, err
			}
			want := wantNow()
			got := 0
			for got < len(want) {
				n, err := co.RecvInto(fd, buf[got:], ad.DefaultFlags)
				if err != nil || n == 0 {
					return i, err
				}
				got += n
			}
			// A response made before a Date change has the same length.
			if string(buf[:got]) != string(want) && string(buf[:got]) != string(wantNow()) {
				b.Fatalf("round trip %d: got %q, want %q", i, buf[:got], want)
			}
		}
		return b.N, nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	n, err := ad.WaitFor(f)
	b.StopTimer()
	if err != nil || n != b.N {
		b.Fatalf("after %d of %d: %v", n, b.N, err)
	}
}

// BenchmarkEchoRoundTrip: one 64-byte message echoed, one at a time.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, style := range []struct {
		name      string
		callbacks bool
	}{{"async", false}, {"callbacks", true}} {
		b.Run(style.name, func(b *testing.B) {
			d, _, fd := loopSetup(b, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: style.callbacks, IdleTimeout: time.Minute})
			})
			msg := make([]byte, 64)
			for i := range msg {
				msg[i] = byte('a' + i%26)
			}
			pingPong(b, d, fd, msg, func() []byte { return msg })
		})
	}
}

// BenchmarkEchoPipelined: 16 messages of 64 bytes in one send, echoed.
func BenchmarkEchoPipelined(b *testing.B) {
	d, _, fd := loopSetup(b, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
		return ServeEcho(d, ln, EchoConfig{IdleTimeout: time.Minute})
	})
	msg := make([]byte, 16*64)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	pingPong(b, d, fd, msg, func() []byte { return msg })
}

const benchRequest = "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

// BenchmarkHTTPRequest: one keep-alive request and its response, as wrk
// sends them.
func BenchmarkHTTPRequest(b *testing.B) {
	d, srv, fd := loopSetup(b, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
		return ServeHTTP(d, ln, HTTPConfig{IdleTimeout: time.Minute})
	})
	h := srv.kind.(*httpServer)
	pingPong(b, d, fd, []byte(benchRequest), func() []byte { return h.resp[0][connDefault] })
}

// BenchmarkHTTPPipelined: 16 pipelined requests in one send, their 16
// responses in one.
func BenchmarkHTTPPipelined(b *testing.B) {
	d, srv, fd := loopSetup(b, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
		return ServeHTTP(d, ln, HTTPConfig{IdleTimeout: time.Minute})
	})
	h := srv.kind.(*httpServer)
	var req []byte
	for range 16 {
		req = append(req, benchRequest...)
	}
	var want []byte
	of := []byte{0}
	pingPong(b, d, fd, req, func() []byte {
		if cur := h.resp[0][connDefault]; &cur[0] != &of[0] {
			of, want = cur, want[:0]
			for range 16 {
				want = append(want, cur...)
			}
		}
		return want
	})
}

// BenchmarkHTTPParse: the parser alone on a wrk-like request head, as
// the server parses a whole head (one pass: scanHead), and the two-step
// path it takes for a head that came in parts (findHeadEnd, then
// parseHead on the head).
func BenchmarkHTTPParse(b *testing.B) {
	req := []byte(benchRequest)
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			e, r, status := scanHead(req)
			if e != len(req) || status != 0 || !r.keepAlive {
				b.Fatal(e, status, r)
			}
		}
	})
	b.Run("parts", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			e := findHeadEnd(req, 0)
			r, status := parseHead(req[:e])
			if e != len(req) || status != 0 || !r.keepAlive {
				b.Fatal(e, status, r)
			}
		}
	})
}
