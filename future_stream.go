package asyncdispatch

import (
	"errors"
	"fmt"
	"slices"
)

// FutureStream (Nim's asyncstreams).
//
// Differences from Nim, on purpose:
//   - several pending readers are served oldest first (Nim hands the
//     first value to the newest reader);
//   - Fail does not lose data (Nim #8994): everything written before Fail
//     is still read, in order, and only then does Read fail with the
//     error;
//   - an optional bound gives back-pressure: Write's future completes only
//     once the value fits in the buffer;
//   - the stream belongs to a dispatcher, like a future: every method must
//     be called on its goroutine. A producer on another goroutine writes
//     through CallSoonThreadSafe.
//
// What must stay true (checked after every method):
//   - readers is non-empty only while buf and blocked are empty (a value
//     never waits while a reader does);
//   - blocked is non-empty only while buf is full (len(buf) == bound);
//   - items leave in the order they were written: buf first, then blocked.

// ErrStreamFinished: Write to a stream after Complete or Fail (Nim's
// message).
var ErrStreamFinished = errors.New("FutureStream is finished and so no longer accepts new data.")

// ReadResult is what Read yields: a value and true, or the zero value and
// false once the stream is complete and drained (Nim's (bool, T)).
type ReadResult[T any] struct {
	Value T
	OK    bool
}

// FutureStream is a FIFO of values of type T written and read
// asynchronously on one dispatcher (Nim's FutureStream[T]).
type FutureStream[T any] struct {
	d    *Dispatcher
	name string
	// bound is the buffer's capacity; unbounded < 0. A bound of 0 makes
	// every Write wait for a reader (a rendezvous).
	bound int
	// buf holds written values not yet read (head is buf[0]).
	buf []T
	// blocked are Writes waiting for room, oldest first.
	blocked []*blockedWrite[T]
	// readers are pending Reads, oldest first.
	readers []*streamReader[T]
	// closed: Complete or Fail was called; err is Fail's error.
	closed bool
	err    error
}

// NewFutureStream creates an unbounded stream on d (nil means the global
// dispatcher); fromProc names the creator, as for NewFuture. Writes
// complete at once.
func NewFutureStream[T any](d *Dispatcher, fromProc string) *FutureStream[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	return &FutureStream[T]{d: d, name: fromProc, bound: -1}
}

// NewBoundedFutureStream creates a stream that buffers at most bound
// values (beyond Nim): a Write that finds the buffer full returns a
// pending future that completes when a Read makes room, so a producer that
// awaits its writes runs no further ahead of the consumer than bound
// values. With bound 0, each Write completes when a reader takes its
// value. A negative bound panics, as make(chan T, -1) does.
func NewBoundedFutureStream[T any](d *Dispatcher, fromProc string, bound int) *FutureStream[T] {
	if bound < 0 {
		panic(fmt.Sprintf("asyncdispatch: NewBoundedFutureStream: negative bound %d", bound))
	}
	fs := NewFutureStream[T](d, fromProc)
	fs.bound = bound
	return fs
}

// Write adds v to the stream. The returned future completes once v is in
// the stream (at once, unless the stream is bounded and full), or fails
// with ErrStreamFinished if the stream was completed or failed already. A
// pending reader receives v at once. Cancelling a pending Write withdraws
// v.
func (fs *FutureStream[T]) Write(v T) *Future[Void] {
	f := newNamed[Void](fs.d, fs.name)
	if fs.d.tracking {
		fs.d.track(f, 2)
	}
	switch {
	case fs.closed:
		f.Fail(ErrStreamFinished)
	case fs.handOver(v):
		f.Complete(Void{})
	case fs.bound < 0 || len(fs.buf) < fs.bound:
		fs.buf = append(fs.buf, v)
		f.Complete(Void{})
	default:
		w := &blockedWrite[T]{fs: fs, v: v, fut: f, name: fs.name}
		f.src = w
		fs.blocked = append(fs.blocked, w)
	}
	return f
}

// handOver gives v to the oldest pending reader, if there is one.
func (fs *FutureStream[T]) handOver(v T) bool {
	if len(fs.readers) == 0 {
		return false
	}
	r := fs.readers[0]
	fs.readers[0] = nil
	fs.readers = fs.readers[1:]
	r.fs = nil
	r.fut.Complete(ReadResult[T]{Value: v, OK: true})
	return true
}

// Read returns a future for the next value: completed at once if a value
// is waiting, with OK false if the stream is complete and drained, failed
// with Fail's error if it failed and is drained; otherwise pending until a
// Write, Complete or Fail. Pending reads are served in the order they were
// made. Cancelling a pending Read gives up its place.
func (fs *FutureStream[T]) Read() *Future[ReadResult[T]] {
	f := newNamed[ReadResult[T]](fs.d, fs.name)
	if fs.d.tracking {
		fs.d.track(f, 2)
	}
	if v, ok := fs.take(); ok {
		f.Complete(ReadResult[T]{Value: v, OK: true})
		return f
	}
	if fs.closed {
		fs.finishReader(f)
		return f
	}
	r := &streamReader[T]{fs: fs, fut: f, name: fs.name}
	f.src = r
	fs.readers = append(fs.readers, r)
	return f
}

// take removes the oldest value: from the buffer, which a blocked write
// then refills, or (bound 0) straight from the oldest blocked write.
func (fs *FutureStream[T]) take() (T, bool) {
	var zero T
	if len(fs.buf) > 0 {
		v := fs.buf[0]
		fs.buf[0] = zero
		fs.buf = fs.buf[1:]
		if len(fs.buf) == 0 {
			fs.buf = nil // let append reuse from the start
		}
		for len(fs.blocked) > 0 && len(fs.buf) < fs.bound {
			fs.buf = append(fs.buf, fs.unblock())
		}
		return v, true
	}
	if len(fs.blocked) > 0 {
		return fs.unblock(), true
	}
	return zero, false
}

// unblock takes the oldest blocked write, completes its future and
// returns its value.
func (fs *FutureStream[T]) unblock() T {
	w := fs.blocked[0]
	fs.blocked[0] = nil
	fs.blocked = fs.blocked[1:]
	w.fs = nil
	w.fut.Complete(Void{})
	return w.v
}

// finishReader ends a read on a closed, drained stream.
func (fs *FutureStream[T]) finishReader(f *Future[ReadResult[T]]) {
	if fs.err != nil {
		f.Fail(fs.err)
	} else {
		f.Complete(ReadResult[T]{})
	}
}

// Complete marks the end of the stream (Nim's complete): values written
// before it are still read, then every Read yields OK false. Writes fail
// from now on. After Complete or Fail, Complete does nothing.
func (fs *FutureStream[T]) Complete() { fs.close(nil) }

// Fail ends the stream with err (nil becomes an error saying so). Unlike
// Nim, which makes the next Read fail and loses the value it would have
// returned (#8994), values written before Fail are still read, in order;
// only then does every Read fail with err. Writes fail from now on. After
// Complete or Fail, Fail does nothing.
func (fs *FutureStream[T]) Fail(err error) {
	if err == nil {
		err = fmt.Errorf("asyncdispatch: Fail(nil) on FutureStream from %s", fs.name)
	}
	fs.close(err)
}

func (fs *FutureStream[T]) close(err error) {
	if fs.closed {
		return
	}
	fs.closed = true
	fs.err = err
	// Pending readers imply nothing is buffered: they all get the end.
	rs := fs.readers
	fs.readers = nil
	for _, r := range rs {
		r.fs = nil
		fs.finishReader(r.fut)
	}
}

// Finished reports whether the stream is complete (or failed) and every
// value has been read (Nim's finished).
func (fs *FutureStream[T]) Finished() bool {
	return fs.closed && len(fs.buf) == 0 && len(fs.blocked) == 0
}

// Failed reports whether Fail was called (Nim's failed).
func (fs *FutureStream[T]) Failed() bool { return fs.err != nil }

// Len is the number of values written and not yet read, blocked writes of
// a bounded stream included (Nim's len).
func (fs *FutureStream[T]) Len() int { return len(fs.buf) + len(fs.blocked) }

// Bound is the stream's capacity, -1 if unbounded.
func (fs *FutureStream[T]) Bound() int { return fs.bound }

// streamReader is a pending Read; cancelling its future takes it out of
// the queue of readers.
type streamReader[T any] struct {
	fs   *FutureStream[T]
	fut  *Future[ReadResult[T]]
	name string // the stream's fromProc
}

func (r *streamReader[T]) procName() string { return r.name }

func (r *streamReader[T]) cancel() bool {
	fs := r.fs
	if fs == nil {
		return false
	}
	r.fs = nil
	if i := slices.Index(fs.readers, r); i >= 0 {
		fs.readers = slices.Delete(fs.readers, i, i+1)
		return true
	}
	return false
}

// blockedWrite is a Write waiting for room; cancelling its future
// withdraws the value.
type blockedWrite[T any] struct {
	fs   *FutureStream[T]
	v    T
	fut  *Future[Void]
	name string // the stream's fromProc
}

func (w *blockedWrite[T]) procName() string { return w.name }

func (w *blockedWrite[T]) cancel() bool {
	fs := w.fs
	if fs == nil {
		return false
	}
	w.fs = nil
	if i := slices.Index(fs.blocked, w); i >= 0 {
		fs.blocked = slices.Delete(fs.blocked, i, i+1)
		return true
	}
	return false
}

// ReadAll reads fs until it is complete and returns everything
// concatenated (Nim's readAll, for string streams; here for []byte
// streams too). If the stream fails, the future fails with its error
// (after the values written before Fail were read). Cancelling the future
// cancels the pending read and discards what was read until then (those
// values have left the stream), including a value that reached the
// pending read in the round of the Cancel.
func ReadAll[S ~[]byte | ~string](fs *FutureStream[S]) *Future[S] {
	if fs == nil {
		r := NewFuture[S](nil, "ReadAll")
		r.Fail(ErrNilFuture)
		return r
	}
	r := newNamed[S](fs.d, "ReadAll")
	if fs.d.tracking {
		fs.d.track(r, 2)
	}
	var (
		buf []byte
		cur *Future[ReadResult[S]]
	)
	// consume handles one finished read and reports whether to go on.
	consume := func(f *Future[ReadResult[S]]) bool {
		f.markSeen()
		switch {
		case r.state != pending:
			return false
		case f.state == failed:
			r.tryFail(f.err)
			return false
		case !f.value.OK:
			r.tryComplete(S(buf))
			return false
		}
		buf = append(buf, f.value.Value...)
		return true
	}
	var next func()
	next = func() {
		for {
			f := fs.Read()
			if f.state == pending {
				cur = f
				f.addCallback(callback{fn: func() {
					cur = nil
					if consume(f) {
						next()
					}
				}})
				return
			}
			if !consume(f) {
				return
			}
		}
	}
	r.src = &linked{name: "ReadAll", onCancel: func() bool {
		if cur != nil {
			cur.Cancel()
		}
		return true
	}}
	next()
	return r
}
