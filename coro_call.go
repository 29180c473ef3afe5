package asyncdispatch

// Call runs the async procedure body on co, the caller's coroutine, and
// returns its result: Nim's `await body()`, for a procedure awaited as
// soon as it is called. Its caller would be suspended on body's future
// for as long as body runs anyway, so no future and no coroutine are made:
// body suspends the caller whenever it awaits something unfinished, and a
// body that never suspends costs a function call (Nim's chain of awaited
// async procs costs a future and a callback per level).
//
// Call(co, body) is body(co) with one addition that costs nothing on
// success: a returned error gets body's name appended to its async trace
// (*AsyncError), as if it had crossed the Await of body's own future, so
// traces read as Nim's do. A panic in body is not caught here: it unwinds
// into the calling procedure, whose future fails with it (the stack shows
// both). Cancelling the calling procedure cancels what body is awaiting.
//
// Use Async instead for a procedure that must run concurrently with its
// caller.
func Call[T any](co *Coro, body func(co *Coro) (T, error)) (T, error) {
	v, err := body(co)
	if err != nil {
		err = traced(err, namedBody{body})
	}
	return v, err
}

// namedBody names a procedure body in an async trace.
type namedBody struct{ fn any }

func (b namedBody) procName() string { return funcName(b.fn) }
