// Package asyncdispatch is Nim's asyncdispatch for Go: an event dispatcher,
// Future[T], async procedures with Await, non-blocking sockets, timers,
// cross-goroutine events, process-exit and signal watching, and loop
// control (Poll, Drain, RunForever, WaitFor). Linux, on epoll.
//
// # The loop model
//
// A Dispatcher is one event loop. One goroutine drives it by calling Poll,
// Drain, RunForever or WaitFor; one iteration fires due
// timers, waits for I/O no longer than the next timer, runs the callbacks
// of ready descriptors, fires timers again, and drains the queue of ready
// callbacks — including callbacks queued while draining. Future callbacks
// and the resumption of async procedures run only in that drain, in FIFO
// order; completing a future never runs a callback inline.
//
// # Async procedures
//
// An async procedure is a plain Go function
//
//	func(co *asyncdispatch.Coro) (T, error)
//
// Async(d, fn) starts it on a coroutine and returns its *Future[T]. It runs
// synchronously until it awaits an unfinished future, exactly as a Nim
// {.async.} proc does; Await(co, f) suspends it (a coroutine switch on
// iter.Pull, not a goroutine hand-off) until f finishes and returns f's
// value or error. Awaiting a finished future does not switch. To await
// another async procedure at once — Nim's `await fetch()` — use
// `v, err := Call(co, fetch)`, or simply call it with your Coro:
// `fetch(co)`. Either runs it on your coroutine, which is exactly what
// happens when the result is awaited at once, and costs a function call;
// Call also adds fetch to the async trace of an error it returns. Use
// Async only for procedures that run concurrently with the caller.
//
// A returned error fails the procedure's future; a panic fails it with a
// *PanicError carrying the value and the stack. Errors that leave async
// procedures are wrapped in an *AsyncError recording the procedures they
// crossed (Error() is unchanged; %+v prints the trace; errors.Is sees the
// original).
//
// # The threading rule
//
// Everything that touches a dispatcher — future callbacks, async procedure
// bodies, timers, fd callbacks, every method — runs on the goroutine that
// drives it, so none of it needs a lock. Other goroutines reach a loop only
// through its doors, which are safe for concurrent use and wake the loop
// through an eventfd:
//
//   - Dispatcher.CallSoonThreadSafe queues a function on the loop;
//   - Future.CompleteFrom and Future.FailFrom complete a future from
//     another goroutine (plain Complete from another goroutine is a data
//     race, which the race detector reports);
//   - Go and GoContext run a blocking function on a new goroutine and
//     complete a future on the loop with its result (the answer to "how
//     do I call a blocking library from async code");
//   - NewExternalFuture makes a future meant to be completed from outside
//     and keeps the loop alive until it is;
//   - Future.Wait blocks an ordinary goroutine until a future finishes; it
//     does not drive the loop (some other goroutine must be running it),
//     and must never be called on the loop's own goroutine, which would
//     wait for itself — use Await inside async procedures, WaitFor outside;
//   - AsyncEvent.Trigger;
//   - Dispatcher.Done reports that the dispatcher was closed.
//
// The rule has no exception for the global dispatcher. Nim keeps one per
// thread; Go has no thread-locals, so GetGlobalDispatcher returns one per
// process, shared by every goroutine that uses the package-level functions.
// Eight goroutines that each call WaitFor(SleepAsync(…)) on it drive one
// loop at once: they corrupt its timer heap and queues (an index out of
// range, a nil dereference, far from the cause), and only -race notices.
// A goroutine that needs a loop of its own makes one with NewDispatcher; a
// goroutine that only needs to wait for a future calls Future.Wait. WaitFor
// (and Poll, Drain, RunForever) called while another goroutine is inside
// the loop returns ErrWrongGoroutine; one that falls between two of that
// goroutine's rounds cannot tell, and runs the loop alongside it.
//
// The owner check makes every breach visible. Turned on for a dispatcher
// with SetOwnerCheck(true), or for every dispatcher with the environment
// variable ASYNCDISPATCH_CHECK=owner (read once), it panics, on the
// offending goroutine and before anything is changed, with "asyncdispatch:
// dispatcher used from goroutine N while goroutine M runs its loop; use
// CallSoonThreadSafe…" (an error matching ErrWrongGoroutine) whenever a
// method that changes a dispatcher is called from a goroutine other than
// the one running its loop (async procedures and iterators pulled on the
// loop count as the loop). It looks at the choke points every method goes
// through — entering the loop, the ready queue, the timer heap, the
// descriptor table and its wait lists, starting a procedure, a Go call or
// a signal watch, Close — and sees only what happens while some goroutine runs the loop:
// two goroutines using a dispatcher nobody is running are left to -race.
// Off (the default) it costs one predictable branch at each choke point;
// on, about 1.8× the cost of an echo round trip: a debugging aid, like
// -race.
//
// Several dispatchers on several goroutines run side by side and share
// nothing but the optional global dispatcher. An async procedure may await
// another dispatcher's future; its resumption is handed back to its own
// loop, and if the other dispatcher is closed before the future finishes,
// Await returns ErrClosed.
//
// # Closing
//
// Nim cannot close a dispatcher (issue #26102). Dispatcher.Close frees the
// epoll fd and everything else: suspended procedures resume with ErrClosed
// and unwind (deferred calls run), pooled coroutines exit, pending
// operations and timers fail with ErrClosed, descriptors the package made
// are closed. No goroutine outlives it.
//
// # Cancellation
//
// Nim has none (issue #4123). Future.Cancel cancels a pending operation:
// a timer leaves the heap, a socket operation leaves its descriptor's wait
// list, an async procedure's current Await returns ErrCancelled (matching
// context.Canceled). Timeout(f, d) cancels f when d passes (chronos's
// wait); FromContext and CancelWith bridge to context.Context.
//
// # Where this package differs from Nim 1.6.10, on purpose
//
//   - Completing or failing a future twice always panics with a
//     *FutureError whose text starts with Nim's "An attempt was made to
//     complete a Future more than once." (Nim checks only in debug builds).
//   - Poll with a negative timeout honours timers (Nim #14525); Drain's
//     timeout is measured from its start (Nim #24506); a Poll whose wakeup
//     was a timer does not then block.
//   - WaitFor, Poll, Drain and RunForever called from inside the loop
//     return ErrNestedLoop instead of nesting it (Nim #11911).
//   - Combinators (All, And, Or, WithTimeout, AsyncCheck) add callbacks and
//     never drop the ones already on their inputs (Nim's `callback=`
//     replaces every callback, and its and, or, withTimeout and asyncCheck
//     use it on your futures);
//     WithTimeout removes its timer at once when the future wins (Nim PR
//     #25567).
//   - A failed future dropped without anyone reading its error is reported
//     (SetUnhandledErrorHandler); Nim loses it silently.
//   - Callbacks added before a dispatcher exists still run from a Poll: a
//     future always belongs to a dispatcher (Nim runs them inline then).
//   - FuturesInProgress is switched at run time with SetTracking (Nim
//     needs -d:futureLogging).
//   - Timers made by AddTimer use the timer heap, not a timerfd each: they
//     count in HasPendingOperations but not in ActiveDescriptors, and their
//     callback receives InvalidFD.
//   - Socket operations try the system call first and wait for readiness
//     only on EAGAIN, as Go's internal/poll does (Nim always waits for
//     readiness first) — except a receive right after one that drained the
//     socket, which waits for readiness and so saves a system call that
//     would fail; a Send that the kernel takes at once returns a finished
//     future. Several outstanding operations in one direction still
//     complete strictly in order.
//   - Accepted sockets are non-blocking and close-on-exec (Nim leaves them
//     blocking); EMFILE/ENFILE on accept backs off instead of spinning and
//     is reported once per episode; name resolution does not block the
//     loop; Dial uses Happy Eyeballs (RFC 8305) instead of sequential
//     attempts; CloseSocket fails pending operations before the descriptor
//     number is released (Nim #12652); errors carry their errno.
//   - An async procedure that completes 128 socket operations in a row
//     without suspending yields to the loop once (a cooperative budget, as
//     Tokio's), so a connection whose socket always has data cannot starve
//     the others; Nim's loop has the same starvation (#7193) in its drain.
//   - Register makes the descriptor non-blocking (Nim leaves that to the
//     caller); a blocking call on a registered fd would stall the loop.
//   - Unregister fails pending operations with ErrNotRegistered instead of
//     orphaning them; unregistering twice returns an error (Nim asserts).
//   - AsyncEvent.Close unregisters (Nim PR #4694); AddProcess uses pidfd,
//     so any number of registrations work, a child that already exited is
//     reported, and non-children can be watched; AddSignal bridges
//     os/signal, since Go's runtime owns signal handling.
//   - FutureStream serves several pending readers oldest first (Nim:
//     newest first) and can be bounded for back-pressure.
//
// # Name map
//
// Every name of Nim's asyncdispatch reference and its Go counterpart. The
// methods on *Dispatcher are the primary API; package-level functions of
// the same name act on the global dispatcher (GetGlobalDispatcher).
//
//	Nim                          Go
//	---------------------------  ---------------------------------------------
//	Future[T]                    *Future[T]
//	Future[void]                 *Future[Void]
//	AsyncFD                      AsyncFD
//	PDispatcher                  *Dispatcher
//	Callback                     Callback  (func(fd AsyncFD) bool)
//	AsyncEvent                   *AsyncEvent
//	FutureStream[T]              *FutureStream[T]
//	SocketFlag.SafeDisconn/Peek  SafeDisconn, Peek (SocketFlag; DefaultFlags)
//	Port, Domain, SockType,      int (use golang.org/x/sys/unix constants:
//	  Protocol                     unix.AF_INET, unix.SOCK_STREAM, ...)
//	{.async.} proc               func(co *Coro) (T, error), started by Async
//	await f                      Await(co, f); await p() is Call(co, p)
//	yield f (no raise)           Await, then inspect the error
//	newFuture[T](fromProc)       NewFuture[T](d, fromProc)
//	complete / fail              Future.Complete / Future.Fail
//	finished / failed            Future.Finished / Future.Failed
//	read                         Future.Read  (value, error)
//	readError                    Future.Err   (nil when there is none)
//	addCallback                  Future.AddCallback
//	callback=                    none: it drops callbacks; use AddCallback
//	asyncCheck                   AsyncCheck
//	all / and / or               All / And / Or
//	getFuturesInProgress         Dispatcher.FuturesInProgress (SetTracking)
//	newDispatcher                NewDispatcher
//	setGlobalDispatcher          SetGlobalDispatcher
//	getGlobalDispatcher          GetGlobalDispatcher (one per process, not
//	                             per thread: one goroutine at a time)
//	getIoHandler                 Dispatcher.GetIoHandler (the epoll fd)
//	register                     Dispatcher.Register, Register
//	unregister (fd)              Dispatcher.Unregister, Unregister
//	contains                     Dispatcher.Contains, Contains
//	hasPendingOperations         Dispatcher.HasPendingOperations
//	closeSocket                  Dispatcher.CloseSocket, CloseSocket
//	callSoon                     Dispatcher.CallSoon, CallSoon
//	activeDescriptors            Dispatcher.ActiveDescriptors
//	maxDescriptors               MaxDescriptors
//	setInheritable               SetInheritable
//	recv                         Dispatcher.Recv ([]byte), RecvString
//	recvInto                     Dispatcher.RecvInto
//	recvFromInto                 Dispatcher.RecvFromInto (RecvFromResult)
//	send (pointer, size)         Dispatcher.Send ([]byte)
//	send (string)                Dispatcher.SendString
//	sendTo                       Dispatcher.SendTo (netip.AddrPort), SendToUnix
//	createAsyncNativeSocket      Dispatcher.CreateAsyncNativeSocket
//	connect                      Dispatcher.Connect
//	dial                         Dispatcher.Dial
//	acceptAddr                   Dispatcher.AcceptAddr (AcceptResult)
//	accept                       Dispatcher.Accept
//	sleepAsync                   Dispatcher.SleepAsync (time.Duration)
//	withTimeout                  WithTimeout (and Timeout, which cancels)
//	addTimer                     Dispatcher.AddTimer (returns a *Timer)
//	newAsyncEvent                NewAsyncEvent
//	trigger                      AsyncEvent.Trigger
//	addEvent                     Dispatcher.AddEvent, AddEvent
//	unregister (ev)              Dispatcher.UnregisterEvent, AsyncEvent.Unregister
//	close (ev)                   AsyncEvent.Close (also unregisters)
//	addProcess                   Dispatcher.AddProcess (and WaitProcess)
//	addSignal                    Dispatcher.AddSignal (and RemoveSignal)
//	addRead / addWrite           Dispatcher.AddRead / Dispatcher.AddWrite
//	poll                         Dispatcher.Poll (timeout; DefaultPollTimeout)
//	drain                        Dispatcher.Drain
//	runForever                   Dispatcher.RunForever
//	waitFor                      WaitFor (uses the future's dispatcher;
//	                             only on the goroutine that runs its loop,
//	                             Future.Wait from any other)
//	readAll                      ReadAll
//	newFutureStream, write,      NewFutureStream, FutureStream.Write, Read,
//	  read, complete, fail,        Complete, Fail, Finished, Failed, Len
//	  finished, failed, len
//	newCustom                    none: it builds IOCP OVERLAPPED structures,
//	                             which exist only on Windows
//	scheduleCallbacks            Dispatcher.ScheduleCallbacks (Nim: Genode
//	                             only; here on every platform)
//	FutureVar, mget, clean       none: a *Future[T] is already a reference
//	                             the callee can complete
//	ValueError "No handles..."   ErrNoWork (same text)
//	FutureError                  *FutureError (panic value)
//	ioselSupportedPlatform       Linux, the platform this package runs on:
//	                             every feature the reference marks as
//	                             needing it (addEvent, addProcess,
//	                             addSignal) is there
//
// Go additions without a Nim counterpart: Dispatcher.Close and Done,
// Call, Cancel, Timeout, FromContext, CancelWith, CallSoonThreadSafe, Go,
// GoContext, NewExternalFuture, Future.CompleteFrom/FailFrom/Wait,
// WaitProcess, NewBoundedFutureStream, Listen, SetTracking,
// SetUnhandledErrorHandler, SetAcceptErrorHandler, RegisteredDescriptors,
// GetLocalAddr/GetPeerAddr.
package asyncdispatch
