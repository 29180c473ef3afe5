//go:build linux

package uring

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Ring modes compared by the benchmarks (see thread_linux.go).
var benchModes = []struct {
	name string
	opts Options
	lock bool
}{
	{"plain", Options{}, false},
	{"coop", Options{coopTaskrun: true}, false},
	{"single", Options{SingleIssuer: true}, true}, // SINGLE_ISSUER|DEFER_TASKRUN, thread locked
}

func benchRing(b *testing.B, opts Options, lock bool) *Ring {
	if lock {
		runtime.LockOSThread()
		b.Cleanup(runtime.UnlockOSThread)
	}
	r, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// reap waits for and consumes n completions.
func reap(b *testing.B, r *Ring, n int) {
	for n > 0 {
		if _, err := r.SubmitAndWait(uint32(n), -1); err != nil {
			b.Fatal(err)
		}
		for c := range r.Completions() {
			if c.Res < 0 {
				b.Fatalf("%+v: %v", c, c.Err())
			}
			n--
		}
	}
}

// BenchmarkNop: one NOP per io_uring_enter, and 64 per enter (ns/op is
// per NOP in both).
func BenchmarkNop(b *testing.B) {
	for _, m := range benchModes {
		for _, batch := range []int{1, 64} {
			b.Run(m.name+"/batch="+itoa(batch), func(b *testing.B) {
				r := benchRing(b, m.opts, m.lock)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := 0; j < batch; j++ {
						r.GetSQE().PrepNop(uint64(j))
					}
					reap(b, r, batch)
				}
			})
		}
	}
}

// BenchmarkEcho: a 64-byte message from a to b and back on a socketpair,
// through the ring (recv and send submitted together, one enter per
// direction) and through plain read/write system calls, in the same run.
func BenchmarkEcho(b *testing.B) {
	msg := make([]byte, 64)
	for _, m := range benchModes {
		b.Run("ring-"+m.name, func(b *testing.B) {
			r := benchRing(b, m.opts, m.lock)
			x, y := socketpair(b, unix.SOCK_STREAM)
			buf, back := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.GetSQE().PrepRecv(y, buf, 0, 1)
				r.GetSQE().PrepSend(x, msg, 0, 2)
				reap(b, r, 2)
				r.GetSQE().PrepRecv(x, back, 0, 3)
				r.GetSQE().PrepSend(y, buf, 0, 4)
				reap(b, r, 2)
			}
		})
	}
	b.Run("syscalls", func(b *testing.B) {
		x, y := socketpair(b, unix.SOCK_STREAM)
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := unix.Write(x, msg); err != nil {
				b.Fatal(err)
			}
			if _, err := unix.Read(y, buf); err != nil {
				b.Fatal(err)
			}
			if _, err := unix.Write(y, buf); err != nil {
				b.Fatal(err)
			}
			if _, err := unix.Read(x, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCrossThreadCompletion measures how long a receive takes to
// complete when the thread that submitted it is busy in user space and
// another thread waits: what happens to an unlocked loop goroutine that
// migrated between submitting and waiting. Its task work runs on the
// submitting thread: with an IPI by default, at that thread's next
// kernel entry (timer tick, preemption signal) with COOP_TASKRUN. The
// metric is the mean latency from the peer's write to the completion.
func BenchmarkCrossThreadCompletion(b *testing.B) {
	for _, m := range benchModes[:2] {
		b.Run(m.name, func(b *testing.B) {
			r := benchRing(b, m.opts, false)
			x, y := socketpair(b, unix.SOCK_STREAM)
			buf := make([]byte, 64)
			var req, ack atomic.Int32
			var stop atomic.Bool
			done := make(chan struct{})
			go func() { // the busy submitter
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				defer close(done)
				for !stop.Load() {
					if req.Load() == 1 {
						r.GetSQE().PrepRecv(y, buf, 0, 1)
						if _, err := r.Submit(); err != nil {
							panic(err)
						}
						req.Store(0)
						ack.Store(1)
					}
				}
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ack.Store(0)
				req.Store(1)
				for ack.Load() == 0 {
					runtime.Gosched()
				}
				start := time.Now()
				unix.Write(x, buf[:1])
				reap(b, r, 1)
				total += time.Since(start)
			}
			b.StopTimer()
			stop.Store(true)
			<-done
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-latency")
		})
	}
}

// BenchmarkGoroutineWakeup is what runtime.LockOSThread costs a loop
// goroutine each time it blocks on a Go primitive (a channel here) rather
// than in a system call: a locked goroutine can only run on its own
// thread, so every wakeup is a thread wakeup.
func BenchmarkGoroutineWakeup(b *testing.B) {
	for _, lock := range []bool{false, true} {
		name := "unlocked"
		if lock {
			name = "locked"
		}
		b.Run(name, func(b *testing.B) {
			ping, pong := make(chan struct{}), make(chan struct{})
			go func() {
				for range ping {
					pong <- struct{}{}
				}
			}()
			if lock {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ping <- struct{}{}
				<-pong
			}
			b.StopTimer()
			close(ping)
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
