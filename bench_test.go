package asyncdispatch_test

import (
	"iter"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The micro costs of the core, each shaped like a Nim micro-benchmark of
// the same operation so the two can be compared per op.

// (a) future: create + callback + complete, callbacks run by a poll every
// 1000 (as the Nim anchor batches them).
func BenchmarkFutureCreateCallbackComplete(b *testing.B) {
	d := newD(b)
	ran := 0
	cb := func() { ran++ }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := ad.NewFuture[int](d, "bench")
		f.AddCallback(cb)
		f.Complete(i)
		if i%1000 == 999 {
			d.Poll(0)
		}
	}
	d.Poll(0)
	if ran != b.N {
		b.Fatalf("ran %d of %d", ran, b.N)
	}
}

// awaitLoop runs step b.N times in one async procedure (as the Nim
// anchor's chainLoop does) and checks that every step returned 1.
func awaitLoop(b *testing.B, d *ad.Dispatcher, step func(co *ad.Coro) (int, error)) {
	b.ReportAllocs()
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		s := 0
		for i := 0; i < b.N; i++ {
			v, _ := step(co)
			s += v
		}
		return s, nil
	})
	if v, _ := ad.WaitFor(f); v != b.N {
		b.Fatal(v)
	}
}

func leafProc(co *ad.Coro) (int, error) { return 1, nil }

// (b) await chain: `proc outer = return await leaf()` awaited N times in
// one async loop. Awaiting an async procedure at once is a plain call in
// this package (see Coro), so this is what the Nim program does.
func BenchmarkAwaitChainDirect(b *testing.B) {
	outer := func(co *ad.Coro) (int, error) { return leafProc(co) }
	awaitLoop(b, newD(b), outer)
}

// (b) again through Call, which adds the procedure to the async trace of
// an error (nothing on success).
func BenchmarkAwaitChainCall(b *testing.B) {
	outer := func(co *ad.Coro) (int, error) { return ad.Call(co, leafProc) }
	awaitLoop(b, newD(b), func(co *ad.Coro) (int, error) { return ad.Call(co, outer) })
}

// (b') the same with every call a separate future: Await(Async(outer))
// where outer awaits Async(leaf) — two coroutine-backed procedures per
// iteration, neither suspending.
func BenchmarkAwaitChainFutures(b *testing.B) {
	d := newD(b)
	outer := func(co *ad.Coro) (int, error) { return ad.Await(co, ad.Async(d, leafProc)) }
	awaitLoop(b, d, func(co *ad.Coro) (int, error) { return ad.Await(co, ad.Async(d, outer)) })
}

// An async call that never suspends, started from the loop (one pooled
// coroutine switch in and out).
func BenchmarkAsyncNoSuspend(b *testing.B) {
	d := newD(b)
	b.ReportAllocs()
	s := 0
	for i := 0; i < b.N; i++ {
		v, _ := ad.Async(d, leafProc).Read()
		s += v
	}
	if s != b.N {
		b.Fatal(s)
	}
}

// Await that suspends: a procedure awaits a pending future that a queued
// callback completes; one suspend + resume per op, all inside one Poll's
// drain (no system call per op).
func BenchmarkAwaitSuspendResume(b *testing.B) {
	d := newD(b)
	awaitLoop(b, d, func(co *ad.Coro) (int, error) {
		cur := ad.NewFuture[int](d, "step")
		d.CallSoon(func() { cur.Complete(1) })
		return ad.Await(co, cur)
	})
}

// (d) CallSoon ×1000 then a poll.
func BenchmarkCallSoon(b *testing.B) {
	d := newD(b)
	ran := 0
	tick := func() { ran++ }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.CallSoon(tick)
		if i%1000 == 999 {
			d.Poll(0)
		}
	}
	d.Poll(0)
	if ran != b.N {
		b.Fatal(ran)
	}
}

// (c) timers: N SleepAsync(10ms) armed at once and all fired; ns/op is per
// timer (create + fire), the "create" metric the scheduling part alone.
func BenchmarkTimers(b *testing.B) {
	d := newD(b)
	b.ReportAllocs()
	fired := 0
	cb := func() { fired++ }
	start := time.Now()
	for i := 0; i < b.N; i++ {
		d.SleepAsync(10 * time.Millisecond).AddCallback(cb)
	}
	create := time.Since(start)
	for fired < b.N {
		if err := d.Poll(-1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(create.Nanoseconds())/float64(b.N), "create-ns/timer")
}

// One million timers armed and fired (the shape, fixed size).
func BenchmarkMillionTimers(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d, _ := ad.NewDispatcher()
		fired := 0
		cb := func() { fired++ }
		for j := 0; j < 1_000_000; j++ {
			d.SleepAsync(time.Duration(j%1000) * time.Microsecond).AddCallback(cb)
		}
		d.Drain(time.Minute)
		if fired != 1_000_000 {
			b.Fatal(fired)
		}
		d.Close()
	}
}

// Floors, for reading the rows above: what Go itself charges for the two
// things a future and an async call cannot avoid. NewFuture[int] makes
// one 96-byte heap object with pointers (the future and its name); an async call that does not run on
// its caller's coroutine is one coroutine round trip (iter.Pull).
type floorFuture struct {
	d           *int
	state, seen bool
	value       int
	err         error
	fn          func()
	co          *int
	src         any
	name        string
	dbg         *int
}

var floorSink *floorFuture

func BenchmarkFloorAlloc96(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		floorSink = &floorFuture{value: i}
	}
}

func BenchmarkFloorCoroSwitch(b *testing.B) {
	next, stop := iter.Pull(func(yield func(int) bool) {
		for i := 0; yield(i); i++ {
		}
	})
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next()
	}
}
