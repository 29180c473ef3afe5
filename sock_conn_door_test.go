package asyncdispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The door: goroutines that do not run a loop use the views too; the
// calling goroutine waits while the loop does the I/O.

// runLoopBehind runs d's loop on a goroutine of its own until the
// returned stop is called (stop waits for it). Nothing else may use d on
// the test's goroutine meanwhile but the views' doors.
func runLoopBehind(t testing.TB, d *ad.Dispatcher) (stop func()) {
	t.Helper()
	ext := ad.NewExternalFuture[ad.Void](d, "the test's loop")
	done := make(chan error, 1)
	go func() {
		_, err := ad.WaitFor(ext)
		done <- err
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ext.CompleteFrom(ad.Void{})
			if err := <-done; err != nil {
				t.Errorf("loop: %v", err)
			}
		})
	}
}

// net/http's own server, http.Serve, over a listener view: a real client,
// several requests on one kept-alive connection, several connections,
// then Shutdown; nothing is left behind.
func TestConnDoorHTTPServe(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		stop := runLoopBehind(t, d)
		defer stop()
		var conns atomic.Int32
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
			}),
			ConnState: func(c net.Conn, s http.ConnState) {
				if s == http.StateNew {
					if _, ok := c.(*ad.Conn); !ok {
						t.Errorf("http.Serve got a %T", c)
					}
					conns.Add(1)
				}
			},
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		tr := &http.Transport{MaxIdleConnsPerHost: 4}
		defer tr.CloseIdleConnections()
		cl := &http.Client{Transport: tr, Timeout: waitLimit}
		url := "http://" + ln.Addr().String()
		for i := 0; i < 5; i++ {
			resp, err := cl.Post(url+fmt.Sprintf("/seq/%d", i), "text/plain", bytes.NewReader(make([]byte, i*1000)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("POST /seq/%d %d", i, i*1000); string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
		}
		if n := conns.Load(); n != 1 {
			t.Fatalf("5 sequential requests used %d connections, want 1 (keep-alive)", n)
		}
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := cl.Get(url + fmt.Sprintf("/par/%d", i))
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("GET /par/%d 0", i); string(b) != want {
					t.Errorf("got %q, want %q", b, want)
				}
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Fatalf("Serve returned %v", err)
		}
		tr.CloseIdleConnections()
	})
}

// doorPair makes a connected pair of views on d, d's loop running behind.
func doorPair(t *testing.T, d *ad.Dispatcher) (c, s *ad.Conn, stop func()) {
	t.Helper()
	c, s = viewPair(t, d, "tcp4", "127.0.0.1:0")
	return c, s, runLoopBehind(t, d)
}

// Deadlines through the door: expiry, revival, a change while a Read
// waits (made by another goroutine, as net/http does to abort a
// background read), with no data lost.
func TestConnDoorDeadlines(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s, stop := doorPair(t, d)
		defer stop()
		defer c.Close()
		defer s.Close()
		start := time.Now()
		s.SetReadDeadline(start.Add(30 * time.Millisecond))
		_, err := s.Read(make([]byte, 4))
		isTimeout(t, "Read through the door past its deadline", err)
		if el := time.Since(start); el < 30*time.Millisecond {
			t.Fatalf("deadline fired after %v", el)
		}
		s.SetReadDeadline(time.Time{})
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("after revival: %q %v", buf, err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := s.Read(buf)
			errc <- err
		}()
		// The Read above is waiting (or about to): a deadline in the past
		// set now, from this goroutine, ends it either way.
		time.Sleep(time.Millisecond)
		s.SetReadDeadline(time.Unix(1, 0))
		isTimeout(t, "waiting Read whose deadline another goroutine set in the past", <-errc)
		s.SetReadDeadline(time.Time{})
		c.Write([]byte("pong"))
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("after the aborted Read: %q %v", buf, err)
		}
	})
}

// Close from one goroutine while another waits in Read: the Read fails
// with net.ErrClosed; every use after, and a second Close, too.
func TestConnDoorCloseWhileReading(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s, stop := doorPair(t, d)
		defer stop()
		defer c.Close()
		errc := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 4))
			errc <- err
		}()
		time.Sleep(time.Millisecond) // let the Read wait (not needed for the outcome)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read waiting during Close: %v", err)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		if err := s.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// Goroutines reading, writing, setting deadlines and closing at once, the
// checks of x/net's nettest.TestConn written out: data is complete and in
// order, the race detector sees nothing.
func TestConnDoorConcurrentUse(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s, stop := doorPair(t, d)
		defer stop()
		const size = 4 << 20
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { // writer, in uneven pieces
			defer wg.Done()
			for off := 0; off < size; {
				n := min(size-off, 1+off%65536)
				if _, err := c.Write(data[off : off+n]); err != nil {
					t.Error(err)
					return
				}
				off += n
			}
			c.CloseWrite()
		}()
		var got bytes.Buffer
		go func() { // reader, with a deadline set before every Read
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				s.SetReadDeadline(time.Now().Add(waitLimit))
				n, err := s.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // someone fiddling with the write deadline meanwhile
			defer wg.Done()
			for i := 0; i < 100; i++ {
				s.SetWriteDeadline(time.Now().Add(time.Hour))
				s.SetWriteDeadline(time.Time{})
			}
		}()
		wg.Wait()
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("received %d bytes, not the %d sent in order", got.Len(), size)
		}
		c.Close()
		s.Close()
	})
}

// The door of a closed dispatcher: every call fails at once with an error
// matching net.ErrClosed (and ErrClosed), none waits.
func TestConnDoorAfterDispatcherClose(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		d.Close()
		done := make(chan []error, 1)
		go func() {
			_, rerr := s.Read(make([]byte, 1))
			_, werr := c.Write([]byte("x"))
			_, aerr := ln.Accept()
			done <- []error{rerr, werr, aerr, s.SetDeadline(time.Now())}
		}()
		for i, err := range <-done {
			if !errors.Is(err, net.ErrClosed) || !errors.Is(err, ad.ErrClosed) {
				t.Fatalf("call %d after the dispatcher closed: %v", i, err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatalf("first Close after the dispatcher closed: %v", err)
		}
	})
}

// Every method from many goroutines at once, Close among them (nettest's
// ConcurrentMethods): each call returns, with data or an error matching
// net.ErrClosed or a timeout, and the race detector sees nothing.
func TestConnDoorConcurrentMethods(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s, stop := doorPair(t, d)
		defer stop()
		defer c.Close()
		var wg sync.WaitGroup
		ok := func(err error) bool {
			var ne net.Error
			return err == nil || err == io.EOF || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout())
		}
		for i := 0; i < 8; i++ {
			wg.Add(6)
			go func() {
				defer wg.Done()
				_, err := s.Read(make([]byte, 16))
				if !ok(err) {
					t.Error("Read:", err)
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := s.Write([]byte("data")); !ok(err) {
					t.Error("Write:", err)
				}
			}()
			go func() {
				defer wg.Done()
				if err := s.SetDeadline(time.Now().Add(time.Duration(i) * time.Millisecond)); !ok(err) {
					t.Error("SetDeadline:", err)
				}
			}()
			go func() {
				defer wg.Done()
				_ = s.LocalAddr().String() + s.RemoteAddr().String()
			}()
			go func() {
				defer wg.Done()
				c.Write([]byte("ping"))
			}()
			go func() {
				defer wg.Done()
				if i == 4 {
					s.Close()
				}
			}()
		}
		wg.Wait()
		s.Close()
	})
}

// BenchmarkConnDoorEcho: a 64-byte echo between a goroutine using a view
// through the door and an async procedure on the loop: what a goroutine
// pays per round trip (for comparison with BenchmarkConnEcho).
func BenchmarkConnDoorEcho(b *testing.B) {
	d := newD(b)
	c, s := viewPair(b, d, "tcp4", "127.0.0.1:0")
	srv := ad.Async(d, func(co *ad.Coro) (int64, error) { return io.Copy(s, s) })
	stop := runLoopBehind(b, d)
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
	stop()
	wait(b, srv)
	s.Close()
}
