package asyncdispatch

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The remote queue's contract under contention (run it with -race: the
// detector then also checks that what a poster wrote before its post is
// ordered before the callback that reads it, with no lock in between):
//   - a post that returned nil ran exactly once on the loop, or — the
//     dispatcher having been torn down first — was given to its drop
//     function exactly once (posts with one), never both;
//   - a post that returned ErrClosed neither ran nor was dropped, and
//     every post made after Done was seen closed returned ErrClosed;
//   - nothing ran after the teardown, and each producer's callbacks ran
//     in the order it posted them.
func TestRemoteQueueStressClose(t *testing.T) {
	const producers, posts = 6, 3000
	for round := 0; round < 8; round++ {
		d, err := NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		type post struct {
			err                error
			lateOK             bool // posted after Done was closed, and accepted
			withDrop           bool
			payload            int // written by the poster, read by the loop
			ran, dropped, late int // written on the loop's goroutine only
		}
		all := make([][]post, producers)
		for p := range all {
			all[p] = make([]post, posts)
		}
		last := make([]int, producers) // loop-owned: the last index run per producer
		for p := range last {
			last[p] = -1
		}
		var outOfOrder []string // loop-owned

		keep := NewExternalFuture[Void](d, "keep")
		loopDone := make(chan error, 1)
		go func() {
			_, err := WaitFor(keep)
			if err == nil || errors.Is(err, ErrClosed) {
				err = nil
			}
			if !d.closed {
				err = d.Close()
			}
			loopDone <- err
		}()

		var wg sync.WaitGroup
		start := make(chan struct{})
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < posts; i++ {
					ps := &all[p][i]
					ps.payload = p*posts + i
					ps.withDrop = i%2 == 0
					closedBefore := isClosedChan(d.done)
					run := func() {
						if ps.payload != p*posts+i {
							panic("payload not visible")
						}
						if isClosedChan(d.done) {
							ps.late++
						}
						ps.ran++
						if i <= last[p] {
							outOfOrder = append(outOfOrder, "out of order")
						}
						last[p] = i
					}
					if ps.withDrop {
						ps.err = d.postOr(run, func() { ps.dropped++ })
					} else {
						ps.err = d.CallSoonThreadSafe(run)
					}
					ps.lateOK = closedBefore && ps.err == nil
				}
			}()
		}
		close(start)
		// Close at a different moment each round: from inside the loop,
		// through its door, while the producers are posting.
		<-time.After(time.Duration(round) * 200 * time.Microsecond)
		if err := d.CallSoonThreadSafe(func() { d.Close() }); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := <-loopDone; err != nil {
			t.Fatalf("round %d: the loop: %v", round, err)
		}
		<-d.Done()
		var ran, dropped, refused, discarded int
		for p := range all {
			for i := range all[p] {
				ps := &all[p][i]
				switch {
				case ps.lateOK:
					t.Fatalf("round %d: post %d/%d was accepted after Done was closed", round, p, i)
				case ps.late > 0:
					t.Fatalf("round %d: post %d/%d ran after the teardown", round, p, i)
				case ps.err != nil && !errors.Is(ps.err, ErrClosed):
					t.Fatalf("round %d: post %d/%d: %v", round, p, i, ps.err)
				case ps.err != nil && ps.ran+ps.dropped != 0:
					t.Fatalf("round %d: post %d/%d refused but ran %d, dropped %d", round, p, i, ps.ran, ps.dropped)
				case ps.err == nil && ps.withDrop && ps.ran+ps.dropped != 1:
					t.Fatalf("round %d: post %d/%d accepted: ran %d, dropped %d (want exactly one)", round, p, i, ps.ran, ps.dropped)
				case ps.err == nil && !ps.withDrop && ps.ran > 1:
					t.Fatalf("round %d: post %d/%d ran %d times", round, p, i, ps.ran)
				}
				switch {
				case ps.err != nil:
					refused++
				case ps.ran == 1:
					ran++
				case ps.dropped == 1:
					dropped++
				default:
					discarded++
				}
			}
		}
		if len(outOfOrder) > 0 {
			t.Fatalf("round %d: %d callbacks ran out of their producer's order", round, len(outOfOrder))
		}
		t.Logf("round %d: ran %d, dropped %d, discarded %d, refused %d", round, ran, dropped, discarded, refused)
	}
}

// A node taken from the remote queue but still waiting in the ready queue
// when the dispatcher closes is dropped, not lost: a panic stops the drain
// before it, and Close follows.
func TestRemoteQueueTakenNotRunIsDropped(t *testing.T) {
	d, err := NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	ran, dropped := 0, 0
	if err := d.CallSoonThreadSafe(func() { panic("stop the drain") }); err != nil {
		t.Fatal(err)
	}
	if err := d.postOr(func() { ran++ }, func() { dropped++ }); err != nil {
		t.Fatal(err)
	}
	var pe *PanicError
	if err := d.Poll(time.Second); !errors.As(err, &pe) {
		t.Fatalf("Poll: %v, want the callback's panic", err)
	}
	if d.remote.pending() || d.ready.len() != 1 {
		t.Fatalf("the post is not waiting in the ready queue (remote %v, ready %d)", d.remote.pending(), d.ready.len())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if ran != 0 || dropped != 1 {
		t.Fatalf("ran %d, dropped %d; want 0, 1", ran, dropped)
	}
	if err := d.postOr(func() { ran++ }, func() { dropped++ }); !errors.Is(err, ErrClosed) {
		t.Fatalf("post after Close: %v, want ErrClosed", err)
	}
	if ran != 0 || dropped != 1 {
		t.Fatalf("after the refused post: ran %d, dropped %d", ran, dropped)
	}
}

// A post that pushed onto the empty queue just before the teardown must
// finish its wake before the poller is closed: the teardown waits for it.
// It used to close the poller under the poster, whose eventfd write then
// failed with EBADF (or could have written into a reused descriptor):
// TestAwaitAcrossDispatchersBothClosing saw it about once in 30 runs
// under -race.
func TestPostRacingTeardownWakesAnOpenPoller(t *testing.T) {
	d, err := NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	pushed, proceed := make(chan struct{}), make(chan struct{})
	remotePushed = func() { close(pushed); <-proceed }
	defer func() { remotePushed = nil }()
	posted := make(chan error, 1)
	go func() { posted <- d.CallSoonThreadSafe(func() {}) }()
	<-pushed
	remotePushed = nil // the poster is past reading it
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		close(proceed)
		t.Fatalf("Close returned (%v) while a post was still to wake the poller; the post then got %v", err, <-posted)
	case <-time.After(50 * time.Millisecond):
	}
	close(proceed)
	if err := <-posted; err != nil {
		t.Fatalf("the post: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// mutexQueue is the remote queue as it was before loop_remote.go (a
// mutex, a slice and an atomic count the loop checked first), kept here
// to measure against.
type mutexQueue struct {
	mu sync.Mutex
	q  []func()
	n  atomic.Int32
}

func (m *mutexQueue) push(cb func()) {
	m.mu.Lock()
	m.q = append(m.q, cb)
	m.n.Add(1)
	m.mu.Unlock()
}

func (m *mutexQueue) take() []func() {
	if m.n.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	q := m.q
	m.q = nil
	m.n.Store(0)
	m.mu.Unlock()
	return q
}

// BenchmarkRemoteQueue: the queue mechanics alone, without the poller's
// wakes: producers post b.N callbacks in all while one consumer takes
// batches and runs them; ns/op is per callback. "mutex" is the old
// queue, "lockfree" loop_remote.go's.
func BenchmarkRemoteQueue(b *testing.B) {
	for _, producers := range []int{1, 2, 8} {
		for _, kind := range []string{"mutex", "lockfree"} {
			b.Run(fmt.Sprintf("%s/producers=%d", kind, producers), func(b *testing.B) {
				var (
					mq  mutexQueue
					lq  remoteQueue
					ran int
				)
				tick := func() { ran++ }
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				for p := 0; p < producers; p++ {
					n := b.N / producers
					if p == 0 {
						n += b.N % producers
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < n; i++ {
							if kind == "mutex" {
								mq.push(tick)
							} else if ok, empty := lq.push(&remoteNode{run: tick}); ok && empty {
								lq.woke()
							}
						}
					}()
				}
				for ran < b.N {
					if kind == "mutex" {
						for _, cb := range mq.take() {
							cb()
						}
					} else {
						for n := lq.take(); n != nil; n = n.next {
							n.run()
						}
					}
				}
				wg.Wait()
			})
		}
	}
}
