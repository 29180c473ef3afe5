package asyncdispatch_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Nim tfuturestream: a producer writes 0..5 with sleeps between, then
// completes; the consumer reads until the end.
func TestFutureStreamProducerConsumer(t *testing.T) {
	d := newD(t)
	fs := ad.NewFutureStream[int](d, "tfuturestream")
	producer := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for i := 0; i <= 5; i++ {
			if _, err := ad.Await(co, fs.Write(i)); err != nil {
				return ad.Void{}, err
			}
			if _, err := ad.Await(co, d.SleepAsync(5*time.Millisecond)); err != nil {
				return ad.Void{}, err
			}
		}
		fs.Complete()
		return ad.Void{}, nil
	})
	consumer := ad.Async(d, func(co *ad.Coro) ([]int, error) {
		var got []int
		for {
			r, err := ad.Await(co, fs.Read())
			if err != nil {
				return got, err
			}
			if !r.OK {
				return got, nil
			}
			got = append(got, r.Value)
		}
	})
	got, err := ad.WaitFor(consumer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ad.WaitFor(producer); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if !fs.Finished() || fs.Failed() || fs.Len() != 0 {
		t.Fatalf("Finished %v Failed %v Len %d", fs.Finished(), fs.Failed(), fs.Len())
	}
	// Every later Read says the stream is over, at once.
	for i := 0; i < 2; i++ {
		r, err := fs.Read().Read()
		if err != nil || r.OK {
			t.Fatalf("Read after the end: %+v, %v", r, err)
		}
	}
}

// Nim readAll of five writes, for string and []byte streams.
func TestReadAll(t *testing.T) {
	d := newD(t)
	ss := ad.NewFutureStream[string](d, "strings")
	bs := ad.NewFutureStream[[]byte](d, "bytes")
	all := ad.ReadAll(ss) // pending reads first, writes later
	for i := 0; i < 5; i++ {
		ss.Write(fmt.Sprint(i))
		bs.Write([]byte{'a' + byte(i)})
	}
	ss.Complete()
	bs.Complete()
	s, err := ad.WaitFor(all)
	if err != nil || s != "01234" {
		t.Fatalf("ReadAll(strings) = %q, %v", s, err)
	}
	b, err := ad.WaitFor(ad.ReadAll(bs)) // everything buffered already
	if err != nil || string(b) != "abcde" {
		t.Fatalf("ReadAll(bytes) = %q, %v", b, err)
	}
	empty := ad.NewFutureStream[string](d, "empty")
	empty.Complete()
	if s, err := ad.WaitFor(ad.ReadAll(empty)); err != nil || s != "" {
		t.Fatalf("ReadAll(empty) = %q, %v", s, err)
	}
}

// Pending readers are served oldest first (Nim gives the first value to
// the newest reader).
func TestFutureStreamReadersOldestFirst(t *testing.T) {
	d := newD(t)
	fs := ad.NewFutureStream[int](d, "")
	r1, r2, r3 := fs.Read(), fs.Read(), fs.Read()
	fs.Write(100)
	fs.Write(200)
	for i, c := range []struct {
		f    *ad.Future[ad.ReadResult[int]]
		want int
	}{{r1, 100}, {r2, 200}} {
		r, err := c.f.Read()
		if err != nil || !r.OK || r.Value != c.want {
			t.Fatalf("reader %d: %+v, %v; want %d", i+1, r, err, c.want)
		}
	}
	if r3.Finished() {
		t.Fatal("third reader finished without a value")
	}
	fs.Complete()
	if r, err := r3.Read(); err != nil || r.OK {
		t.Fatalf("pending reader at Complete: %+v, %v", r, err)
	}
}

// Fail keeps the data written before it (Nim #8994 loses the item the next
// read would have returned): queued values are read first, then the error.
func TestFutureStreamFailKeepsQueued(t *testing.T) {
	d := newD(t)
	boom := errors.New("boom")
	fs := ad.NewFutureStream[int](d, "")
	fs.Write(1)
	fs.Write(2)
	fs.Fail(boom)
	fs.Complete() // ignored: the stream stays failed
	if !fs.Failed() || fs.Finished() || fs.Len() != 2 {
		t.Fatalf("after Fail: Failed %v Finished %v Len %d", fs.Failed(), fs.Finished(), fs.Len())
	}
	if _, err := fs.Write(3).Read(); !errors.Is(err, ad.ErrStreamFinished) {
		t.Fatalf("Write after Fail: %v", err)
	}
	for _, want := range []int{1, 2} {
		r, err := fs.Read().Read()
		if err != nil || !r.OK || r.Value != want {
			t.Fatalf("Read: %+v, %v; want %d", r, err, want)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := fs.Read().Read(); !errors.Is(err, boom) {
			t.Fatalf("Read after the queue: %v, want boom", err)
		}
	}
	if !fs.Finished() {
		t.Fatal("a failed, drained stream is not Finished")
	}
	// A pending reader gets the error; ReadAll fails after reading.
	fs2 := ad.NewFutureStream[string](d, "")
	pending := fs2.Read()
	fs2.Fail(boom)
	if _, err := pending.Read(); !errors.Is(err, boom) {
		t.Fatalf("pending reader at Fail: %v", err)
	}
	fs3 := ad.NewFutureStream[string](d, "")
	fs3.Write("x")
	fs3.Fail(boom)
	if _, err := ad.WaitFor(ad.ReadAll(fs3)); !errors.Is(err, boom) {
		t.Fatalf("ReadAll of a failed stream: %v", err)
	}
}

// Nim's complete semantics: queued data is still read after Complete,
// Finished only once drained, Write after Complete fails.
func TestFutureStreamComplete(t *testing.T) {
	d := newD(t)
	fs := ad.NewFutureStream[string](d, "")
	fs.Write("a")
	fs.Complete()
	fs.Complete() // a second Complete does nothing
	if fs.Finished() || fs.Len() != 1 {
		t.Fatalf("Finished %v Len %d with a value queued", fs.Finished(), fs.Len())
	}
	w := fs.Write("b")
	if _, err := w.Read(); !errors.Is(err, ad.ErrStreamFinished) || err.Error() != "FutureStream is finished and so no longer accepts new data." {
		t.Fatalf("Write after Complete: %v", err)
	}
	if r, _ := fs.Read().Read(); !r.OK || r.Value != "a" {
		t.Fatalf("Read: %+v", r)
	}
	if !fs.Finished() {
		t.Fatal("not Finished when complete and drained")
	}
}

// Cancelling a pending Read gives up its place; cancelling a blocked Write
// withdraws its value.
func TestFutureStreamCancel(t *testing.T) {
	d := newD(t)
	fs := ad.NewFutureStream[int](d, "")
	r1, r2 := fs.Read(), fs.Read()
	if !r1.Cancel() {
		t.Fatal("Cancel of a pending read")
	}
	fs.Write(7)
	if r, err := r2.Read(); err != nil || r.Value != 7 {
		t.Fatalf("second reader after the first was cancelled: %+v, %v", r, err)
	}
	if fs.Len() != 0 {
		t.Fatalf("Len = %d", fs.Len())
	}

	bs := ad.NewBoundedFutureStream[int](d, "", 1)
	bs.Write(1)
	w2, w3 := bs.Write(2), bs.Write(3)
	if !w2.Cancel() || bs.Len() != 2 {
		t.Fatalf("Cancel of a blocked write: Len %d", bs.Len())
	}
	bs.Complete()
	all := ad.Async(d, func(co *ad.Coro) ([]int, error) {
		var got []int
		for {
			r, err := ad.Await(co, bs.Read())
			if err != nil || !r.OK {
				return got, err
			}
			got = append(got, r.Value)
		}
	})
	got, err := ad.WaitFor(all)
	if err != nil || !reflect.DeepEqual(got, []int{1, 3}) {
		t.Fatalf("read %v, %v; want [1 3]", got, err)
	}
	if !w3.Finished() || w3.Failed() {
		t.Fatal("the blocked write after the cancelled one did not complete")
	}
}

// A bounded stream gives back-pressure: a producer that awaits its writes
// never runs more than bound values ahead of a slow consumer.
func TestBoundedFutureStream(t *testing.T) {
	d := newD(t)
	const bound, n = 2, 10
	fs := ad.NewBoundedFutureStream[int](d, "bounded", bound)
	if fs.Bound() != bound || ad.NewFutureStream[int](d, "").Bound() != -1 {
		t.Fatal("Bound")
	}
	written, maxAhead := 0, 0
	read := 0
	producer := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for i := 0; i < n; i++ {
			if _, err := ad.Await(co, fs.Write(i)); err != nil {
				return ad.Void{}, err
			}
			written++
			if ahead := written - read; ahead > maxAhead {
				maxAhead = ahead
			}
		}
		fs.Complete()
		return ad.Void{}, nil
	})
	consumer := ad.Async(d, func(co *ad.Coro) ([]int, error) {
		var got []int
		for {
			if _, err := ad.Await(co, d.SleepAsync(time.Millisecond)); err != nil {
				return nil, err
			}
			r, err := ad.Await(co, fs.Read())
			if err != nil || !r.OK {
				return got, err
			}
			read++
			got = append(got, r.Value)
		}
	})
	got, err := ad.WaitFor(consumer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ad.WaitFor(producer); err != nil {
		t.Fatal(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v", got)
	}
	// The producer may be one value ahead of the buffer: the write that
	// completed when a read made room.
	if maxAhead < bound || maxAhead > bound+1 {
		t.Fatalf("producer ran %d values ahead with bound %d", maxAhead, bound)
	}
}

// Bound 0 is a rendezvous: a Write completes when a reader takes the value.
func TestFutureStreamRendezvous(t *testing.T) {
	d := newD(t)
	fs := ad.NewBoundedFutureStream[string](d, "", 0)
	w := fs.Write("x")
	if w.Finished() || fs.Len() != 1 {
		t.Fatalf("write without a reader: finished %v, Len %d", w.Finished(), fs.Len())
	}
	if r, _ := fs.Read().Read(); !r.OK || r.Value != "x" {
		t.Fatalf("Read: %+v", r)
	}
	if !w.Finished() || w.Failed() {
		t.Fatal("the write did not complete when its value was taken")
	}
	r := fs.Read()
	if w := fs.Write("y"); !w.Finished() {
		t.Fatal("a write to a waiting reader did not complete at once")
	}
	if v, _ := r.Read(); v.Value != "y" {
		t.Fatalf("reader got %+v", v)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a negative bound did not panic")
		}
	}()
	ad.NewBoundedFutureStream[int](d, "", -1)
}

// ReadAll of a nil stream fails instead of crashing.
func TestReadAllNil(t *testing.T) {
	f := ad.ReadAll[string](nil)
	if !errors.Is(f.Err(), ad.ErrNilFuture) {
		t.Fatal(f.Err())
	}
}
