package asyncdispatch_test

import (
	"sync"
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// curG tells goroutines apart: the same value on one goroutine, a
// different one on each of many live goroutines.
func TestCurGIdentifiesGoroutines(t *testing.T) {
	me := ad.CurG()
	if me == 0 || ad.CurG() != me {
		t.Fatalf("curG on one goroutine: %#x then %#x", me, ad.CurG())
	}
	const n = 100
	ids := make([]uintptr, n)
	var ready, hold sync.WaitGroup
	ready.Add(n)
	hold.Add(1)
	for i := range n {
		go func() {
			ids[i] = ad.CurG()
			ready.Done()
			hold.Wait() // alive until every id is taken
		}()
	}
	ready.Wait()
	seen := map[uintptr]bool{me: true}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("two live goroutines share %#x", id)
		}
		seen[id] = true
	}
	hold.Done()
}

// The loop knows the goroutine of the async procedure running on it, and
// only while it runs: nested procedures, suspensions and resumptions.
func TestRunningProcedureGoroutine(t *testing.T) {
	d := newD(t)
	if g := ad.RunningG(d); g != 0 {
		t.Fatalf("no procedure runs, yet %#x", g)
	}
	check := func(what string) uintptr {
		g := ad.CurG()
		if r := ad.RunningG(d); r != g {
			t.Errorf("%s: running %#x, the procedure is %#x", what, r, g)
		}
		return g
	}
	var inner uintptr
	outer := ad.Async(d, func(co *ad.Coro) (uintptr, error) {
		g := check("outer, started")
		in := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			inner = check("inner, started")
			ad.Await(co, d.SleepAsync(0))
			check("inner, resumed")
			return ad.Void{}, nil
		})
		if check("outer, after inner suspended") != g {
			t.Error("outer changed goroutine")
		}
		ad.Await(co, in)
		if check("outer, resumed") != g {
			t.Error("outer resumed on another goroutine")
		}
		return g, nil
	})
	if g := ad.RunningG(d); g != 0 {
		t.Fatalf("every procedure suspended, yet %#x runs", g)
	}
	g, err := ad.WaitFor(outer)
	if err != nil {
		t.Fatal(err)
	}
	if g == inner || g == ad.CurG() || inner == ad.CurG() {
		t.Fatalf("goroutines: outer %#x, inner %#x, loop %#x", g, inner, ad.CurG())
	}
	if r := ad.RunningG(d); r != 0 {
		t.Fatalf("after the loop ran: %#x", r)
	}
}
