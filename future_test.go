package asyncdispatch_test

import (
	"errors"
	"strings"
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// States and accessors.
func TestFutureStates(t *testing.T) {
	d := newD(t)
	f := ad.NewFuture[int](d, "states")
	if f.Finished() || f.Failed() {
		t.Fatal("new future is finished")
	}
	if _, err := f.Read(); !errors.Is(err, ad.ErrInProgress) {
		t.Fatalf("Read of pending: %v", err)
	}
	if f.Err() != nil {
		t.Fatal("Err of pending is not nil")
	}
	f.Complete(42)
	if v, err := f.Read(); v != 42 || err != nil || !f.Finished() || f.Failed() {
		t.Fatalf("completed: %v %v", v, err)
	}
	g := ad.NewFuture[string](d, "states")
	boom := errors.New("boom")
	g.Fail(boom)
	if _, err := g.Read(); err != boom || !g.Failed() || !g.Finished() || g.Err() != boom {
		t.Fatalf("failed: %v", err)
	}
	if g.Proc() != "states" {
		t.Fatalf("Proc = %q", g.Proc())
	}
}

// Callbacks are queued, FIFO, never inline, and a poll
// drains callbacks queued while draining.
func TestCallbacksNeverInline(t *testing.T) {
	d := newD(t)
	var log []string
	f := ad.NewFuture[int](d, "cb")
	f.AddCallback(func() { log = append(log, "a") })
	f.AddCallback(func() {
		log = append(log, "b")
		d.CallSoon(func() { log = append(log, "queued-while-draining") })
	})
	f.Complete(1)
	if len(log) != 0 {
		t.Fatalf("callbacks ran inside Complete: %v", log)
	}
	f.AddCallback(func() { log = append(log, "late") })
	if len(log) != 0 {
		t.Fatal("callback on finished future ran inline")
	}
	if err := d.Poll(0); err != nil {
		t.Fatal(err)
	}
	want := "a b late queued-while-draining"
	if got := strings.Join(log, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after drain")
	}
}

// FIFO across futures, in the order they were queued.
func TestCallbackOrderAcrossFutures(t *testing.T) {
	d := newD(t)
	var log []int
	a := ad.NewFuture[int](d, "a")
	b := ad.NewFuture[int](d, "b")
	a.AddCallback(func() { log = append(log, 1) })
	b.AddCallback(func() { log = append(log, 2) })
	a.AddCallback(func() { log = append(log, 3) })
	b.Complete(0)
	d.CallSoon(func() { log = append(log, 4) })
	a.Complete(0)
	if err := d.Poll(0); err != nil {
		t.Fatal(err)
	}
	if got := joinInts(log); got != "2 4 1 3" {
		t.Fatalf("order %s", got)
	}
}

// Double completion panics every time with Nim's first line, the
// creator and both sites.
func TestDoubleCompletionPanics(t *testing.T) {
	d := newD(t)
	d.SetTracking(true)
	cases := []struct {
		name string
		do   func(f *ad.Future[string])
	}{
		{"complete twice", func(f *ad.Future[string]) { f.Complete("x"); f.Complete("y") }},
		{"fail after complete", func(f *ad.Future[string]) { f.Complete("x"); f.Fail(errors.New("e")) }},
		{"complete after fail", func(f *ad.Future[string]) { f.Fail(errors.New("e")); f.Complete("y") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := ad.NewFuture[string](d, "doubleProc")
			msg := func() (msg string) {
				defer func() {
					p := recover()
					if p == nil {
						t.Fatal("no panic")
					}
					fe, ok := p.(*ad.FutureError)
					if !ok {
						t.Fatalf("panic value %T", p)
					}
					msg = fe.Error()
				}()
				c.do(f)
				return ""
			}()
			for _, want := range []string{
				"An attempt was made to complete a Future more than once.",
				"doubleProc", "First completion at:", "Second completion at:", "future_test.go",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if !strings.HasPrefix(msg, "An attempt was made to complete a Future more than once.") {
				t.Errorf("first line: %q", msg)
			}
			if c.name == "complete twice" {
				if v, _ := f.Read(); v != "x" {
					t.Errorf("value overwritten: %q", v)
				}
			}
		})
	}
	d.Drain(0)
}

func joinInts(xs []int) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(itoa(x))
	}
	return b.String()
}

func itoa(x int) string {
	if x == 0 {
		return "0"
	}
	neg := x < 0
	if neg {
		x = -x
	}
	var buf [20]byte
	i := len(buf)
	for x > 0 {
		i--
		buf[i] = byte('0' + x%10)
		x /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
