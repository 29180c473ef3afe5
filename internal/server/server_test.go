package server

import (
	"math"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// An idle timeout near math.MaxInt64 ("forever" spelled as a duration,
// serve --idle-timeout 2562047h47m16s) is a deadline that never comes:
// the conversion to ticks used to wrap to a negative count, and every
// connection was dropped at the first sweep, about a second after it
// came. Here the sweeper's rounds are run by hand on the loop (the clock
// advances without waiting), then the connection must still be served.
func TestIdleTimeoutOverflow(t *testing.T) {
	for _, idle := range []time.Duration{math.MaxInt64, 2562047*time.Hour + 47*time.Minute + 16*time.Second, 2562047 * time.Hour} {
		for _, kind := range []string{"echo", "http"} {
			t.Run(kind+"/"+idle.String(), func(t *testing.T) {
				r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
					if kind == "echo" {
						return ServeEcho(d, ln, EchoConfig{IdleTimeout: idle})
					}
					return ServeHTTP(d, ln, HTTPConfig{IdleTimeout: idle})
				})
				c := r.dial(t)
				r.waitConns(1)
				for range 5 {
					r.do(func() { r.srv.sweep(ad.InvalidFD) })
				}
				if n := r.conns(); n != 1 {
					t.Fatalf("%d connections after 5 idle sweeps, want 1", n)
				}
				if kind == "echo" {
					c.Write([]byte("ping"))
					if got := readFull(t, c, 4); got != "ping" {
						t.Fatalf("echo: %q", got)
					}
					return
				}
				resp := exchange(t, c, newReader(c), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")[0]
				if resp.Status != "200 "+Body {
					t.Fatal(resp.Status)
				}
			})
		}
	}
}

// The tick arithmetic saturates instead of wrapping.
func TestTicksSaturate(t *testing.T) {
	s := &Server{period: time.Second}
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{1, 1}, {time.Second, 1}, {time.Second + 1, 2},
		{math.MaxInt64, math.MaxInt64/int64(time.Second) + 1},
	} {
		if got := s.ticksFor(tc.d); got != tc.want {
			t.Errorf("ticksFor(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if got := addTicks(10, math.MaxInt64-5); got != math.MaxInt64 {
		t.Errorf("addTicks wrapped: %d", got)
	}
	if got := addTicks(10, 5); got != 15 {
		t.Errorf("addTicks(10, 5) = %d", got)
	}
}
