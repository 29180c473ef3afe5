package asyncdispatch_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// BenchmarkGroupSelfEcho measures what the loops of a group cost each
// other: each loop runs its own echo traffic over loopback TCP — pairs
// client procedures, each sending a 64-byte message and awaiting its echo
// from a server procedure on the same loop — so no loop waits for another
// thread, and every loop is busy all the time. b.N messages are split
// over the loops. Reported: msgs/s (wall clock) and cpu-ns/msg (the
// process's user and system time per message, from getrusage). If
// nothing the loops share slowed them down, cpu-ns/msg stays the same from
// 1 loop to N and msgs/s grows N-fold (as far as there are idle CPUs).
func BenchmarkGroupSelfEcho(b *testing.B) {
	for _, loops := range []int{1, 2} {
		b.Run(fmt.Sprintf("loops=%d", loops), func(b *testing.B) {
			g, err := ad.NewGroup(ad.GroupConfig{Loops: loops, Pin: loops <= runtime.NumCPU()})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			const pairs = 16
			done := make(chan error, loops)
			start := make(chan struct{})
			for i := 0; i < loops; i++ {
				d := g.Loop(i)
				n := b.N / loops
				if i == 0 {
					n += b.N % loops
				}
				d.CallSoonThreadSafe(func() {
					f := ad.Async(d, func(co *ad.Coro) (ad.Void, error) { return selfEcho(co, d, pairs, n, start) })
					f.AddCallback(func() { _, err := f.Read(); done <- err })
				})
			}
			var ru0, ru1 unix.Rusage
			b.ResetTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			t0 := time.Now()
			close(start)
			for i := 0; i < loops; i++ {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(t0)
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			b.StopTimer()
			cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
		})
	}
}

// selfEcho connects pairs clients to pairs echo procedures on d, waits
// for start, and has the clients exchange msgs messages in all.
func selfEcho(co *ad.Coro, d *ad.Dispatcher, pairs, msgs int, start chan struct{}) (ad.Void, error) {
	ln, err := d.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return ad.Void{}, err
	}
	defer d.CloseSocket(ln)
	_, port, err := ad.GetLocalAddr(ln)
	if err != nil {
		return ad.Void{}, err
	}
	var clients []ad.AsyncFD
	var servers []*ad.Future[ad.Void]
	for i := 0; i < pairs; i++ {
		dial := d.Dial("127.0.0.1", port, unix.IPPROTO_TCP)
		s, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
		if err != nil {
			return ad.Void{}, err
		}
		c, err := ad.Await(co, dial)
		if err != nil {
			return ad.Void{}, err
		}
		unix.SetsockoptInt(int(c), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(int(s), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		clients = append(clients, c)
		servers = append(servers, ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			defer d.CloseSocket(s)
			buf := make([]byte, 4096)
			for {
				n, err := co.RecvInto(s, buf, ad.DefaultFlags)
				if err != nil || n == 0 {
					return ad.Void{}, err
				}
				if err := co.Send(s, buf[:n], ad.DefaultFlags); err != nil {
					return ad.Void{}, err
				}
			}
		}))
	}
	// Off the loop's goroutine: the loop must not block, so wait for the
	// start signal through Go.
	if _, err := ad.Await(co, ad.Go(d, func() (ad.Void, error) { <-start; return ad.Void{}, nil })); err != nil {
		return ad.Void{}, err
	}
	var workers []*ad.Future[ad.Void]
	for i, c := range clients {
		n := msgs / pairs
		if i == 0 {
			n += msgs % pairs
		}
		workers = append(workers, ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			msg := make([]byte, 64)
			got := make([]byte, 64)
			for k := 0; k < n; k++ {
				if err := co.Send(c, msg, ad.DefaultFlags); err != nil {
					return ad.Void{}, err
				}
				for have := 0; have < len(got); {
					m, err := co.RecvInto(c, got[have:], ad.DefaultFlags)
					if err != nil {
						return ad.Void{}, err
					}
					if m == 0 {
						return ad.Void{}, fmt.Errorf("server closed")
					}
					have += m
				}
			}
			return ad.Void{}, nil
		}))
	}
	if _, err := ad.Await(co, ad.All(workers...)); err != nil {
		return ad.Void{}, err
	}
	for _, c := range clients {
		d.CloseSocket(c)
	}
	_, err = ad.Await(co, ad.All(servers...))
	return ad.Void{}, err
}
