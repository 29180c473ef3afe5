package server

import (
	"net"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// A server without a listener serves the connections it is given
// (Adopt), as a loop of an ad.Group does; after Drain or Shutdown a
// connection given to it is closed at once.
func TestAdoptWithoutListener(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			d, err := ad.NewDispatcher()
			if err != nil {
				t.Fatal(err)
			}
			ln, err := d.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr, err := AddrOf(ln)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := ServeEcho(d, ad.InvalidFD, EchoConfig{Callbacks: st.callbacks})
			if err != nil {
				t.Fatal(err)
			}
			if srv.Addr() != "" {
				t.Fatalf("Addr %q without a listener", srv.Addr())
			}
			drained := false
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				for {
					fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
					if err != nil {
						return ad.Void{}, nil
					}
					if drained {
						srv.Drain()
					}
					srv.Adopt(fd)
					drained = true // the next one comes after a Drain
				}
			})
			done := make(chan error, 1)
			go func() { done <- d.RunForever() }()

			c, err := net.DialTimeout("tcp", addr, limit)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(limit))
			c.Write([]byte("ping"))
			if got := readFull(t, c, 4); got != "ping" {
				t.Fatalf("echo: %q", got)
			}
			c2, err := net.DialTimeout("tcp", addr, limit)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			c2.SetDeadline(time.Now().Add(limit))
			waitEOF(t, c2) // adopted after Drain: closed at once
			// The first connection is still served after the Drain.
			c.Write([]byte("pong"))
			if got := readFull(t, c, 4); got != "pong" {
				t.Fatalf("echo after Drain: %q", got)
			}
			c.Close()
			d.CallSoonThreadSafe(func() {
				srv.Done().AddCallback(func() { d.CloseSocket(ln); d.Close() })
			})
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(limit):
				t.Fatal("Done did not finish once the drained server's last connection ended")
			}
		})
	}
}

// Drain stops accepting but lets the connections run; Done finishes when
// the last one ends; Shutdown after Drain still drops what is left.
func TestDrainThenShutdown(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: st.callbacks})
			})
			c1, c2 := r.dial(t), r.dial(t)
			r.waitConns(2)
			r.do(r.srv.Drain)
			if c, err := net.DialTimeout("tcp", r.addr, limit); err == nil {
				c.Close()
				t.Fatal("a connection was accepted after Drain")
			}
			c1.Write([]byte("ping"))
			if got := readFull(t, c1, 4); got != "ping" {
				t.Fatalf("echo after Drain: %q", got)
			}
			c1.Close()
			r.waitConns(1)
			finished := true
			r.do(func() { finished = r.srv.Done().Finished() })
			if finished {
				t.Fatal("Done finished with a connection left")
			}
			r.stop() // Shutdown, then Close once Done finishes
			waitEOF(t, c2)
		})
	}
}
