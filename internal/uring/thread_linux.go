//go:build linux

package uring

// Threads, SINGLE_ISSUER and DEFER_TASKRUN: the decision.
//
// What the kernel does. Every io_uring request belongs to the task, that
// is the OS thread, that submitted it: the work that finishes a socket
// operation (the receive after a poll wakeup, then posting the
// completion) runs as task work on that thread. By default the kernel
// interrupts that thread to run it (TWA_SIGNAL: an IPI if it is on a
// CPU), wherever it is and whatever goroutine it now runs.
//   - IORING_SETUP_COOP_TASKRUN drops the IPI: the task work waits for
//     the submitting thread's next entry into the kernel (a system call,
//     a timer tick, a preemption signal).
//   - IORING_SETUP_SINGLE_ISSUER (6.0) records the thread that set the
//     ring up as its only submitter (ctx->submitter_task) and fails
//     io_uring_enter from any other thread with EEXIST.
//   - IORING_SETUP_DEFER_TASKRUN (6.1, requires SINGLE_ISSUER) queues the
//     task work on the ring and runs it only when that thread calls
//     io_uring_enter with GETEVENTS; waiting from another thread is
//     EEXIST too.
//
// What Go does. A goroutine not locked with runtime.LockOSThread runs on
// whatever thread the scheduler gives it and moves whenever it is
// descheduled (it blocks on a channel or a mutex, or is preempted). An
// event loop goroutine therefore submits from one thread and waits from
// another now and then. TestSingleIssuerWrongThread shows the
// consequence for a SINGLE_ISSUER ring: Submit and SubmitAndWait from a
// second thread fail with EEXIST (ErrWrongThread).
//
// The decision:
//   - The default (Options{}) is neither SINGLE_ISSUER nor DEFER_TASKRUN
//     nor COOP_TASKRUN: it works from any thread, so the dispatcher's loop
//     goroutine needs no locking (it does not lock today, and the
//     goroutine that drives a Dispatcher is the user's).
//   - COOP_TASKRUN is not used without a locked thread: when the loop has
//     moved, a completion's task work waits for the old thread's next
//     kernel entry, up to a timer tick (4 ms at HZ=250) if that thread
//     is busy in user space. BenchmarkCrossThreadCompletion stages this
//     (a busy submitting thread, another thread waiting); on the loaded
//     2-CPU development VM its means overlapped (41–131 µs without,
//     47–381 µs with, over nine runs each), so the choice rests on the
//     kernel's semantics rather than on a measured gain or loss; the
//     benchmark is there to measure it on a quieter machine.
//   - Options.SingleIssuer (SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG) is
//     there for a loop that runs on a goroutine of its own, locked to its
//     thread before New and until Close. It saves the IPIs and runs all
//     completion work in the loop's own enter. Measured over two runs of
//     three on the (shared, 2-CPU) development VM: a socketpair echo
//     round trip 5.5–7.1 µs against 5.8–6.9 µs for the default
//     (BenchmarkEcho), a NOP per enter 1.41–1.67 µs against 1.50–1.65 µs
//     (BenchmarkNop): no gain above the noise. The price: every time the
//     loop blocks on a Go primitive instead of in io_uring_enter, its
//     wakeup is a thread wakeup, 18–28 µs against 0.28–0.44 µs for a
//     channel ping-pong (BenchmarkGoroutineWakeup), and every call must
//     come from that thread.
//
// So the completion backend can start on the default and switch to
// SingleIssuer only if it gives the loop a dedicated, locked goroutine
// and measures a gain on real traffic; nothing measured here justifies
// imposing that on callers.
