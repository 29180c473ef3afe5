package asyncdispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
)

// A Group is N loops serving together: N dispatchers, each driven by a
// goroutine of its own locked to an OS thread (and, if asked, pinned to a
// CPU), sharing nothing while they run. Connections reach them through
// Serve; a loop reaches another through its door (RunOn,
// CallSoonThreadSafe).
//
// What must stay true:
//   - nothing a loop does on its hot path writes memory another loop
//     writes: each loop's dispatcher, listener, services and counters are
//     its own, written by its goroutine only. The Group's own state (its
//     mutex, the failure list) is touched when a loop fails or stops, and
//     by the control calls (Serve, Stats, Shutdown, Close) — never per
//     connection or per operation. The one shared word read on a hot path
//     is a loop's stopped flag, which the hand-off acceptor reads per
//     connection and which is written once;
//   - the control calls reach a loop only through its door, and wait for
//     its answer — a post that the loop's teardown drops answers too
//     (postOr), so a control call never waits for a loop that is gone;
//   - a loop that fails stops alone: its failure is recorded and handed to
//     OnFailure, its dispatcher is closed (its listener with it, so the
//     kernel sends new connections to the other loops), and the others go
//     on. Close and Shutdown then skip it.
//
// The control calls block until the loops have answered: call them from a
// goroutine that is not one of the group's loops (a loop waiting for
// itself would never answer).

// GroupConfig configures NewGroup. The zero value is one loop per CPU,
// unpinned, balanced by SO_REUSEPORT.
type GroupConfig struct {
	// Loops is the number of loops; 0 means runtime.GOMAXPROCS(0), which
	// is the number of CPUs the process may use (its affinity mask and
	// CPU quota) unless GOMAXPROCS says otherwise.
	Loops int
	// Pin pins loop i to the i-th CPU of the process's affinity mask
	// (sched_setaffinity; modulo the mask's size). A pinned loop's thread
	// ends with the loop instead of going back to Go's thread pool with
	// its narrowed mask.
	Pin bool
	// Balance is how Serve spreads connections over the loops.
	Balance Balance
	// OnFailure, if set, is called for every failure of a loop, on that
	// loop's goroutine, after the loop has stopped. It must not call the
	// group's control methods (they wait for the loops).
	OnFailure func(LoopFailure)
}

// MaxLoops bounds GroupConfig.Loops: a loop is a thread, and Go stops
// the program at 10,000 threads (debug.SetMaxThreads).
const MaxLoops = 4096

// Balance is how a group's connections reach its loops.
//
// BalanceReusePort is the default because it balances as well as the
// others where it matters and costs nothing shared. Measured with 2
// loops (pinned), 50 echo connections and 5 runs each, on a 2-CPU
// machine: SO_REUSEPORT split the connections 26/24, 25/25, 23/27,
// 29/21, 16/34; the hand-off 25/25 every time, but the work did not
// follow the counts (the loops' shares of the operations ranged from
// 39/61 to 59/41 with either, since connections differ in how much they
// send), and every connection then crossed loops once, with all accepts
// on loop 0. Throughput (45,000 to 67,000 msg/s) did not separate the
// two beyond the noise. BalanceCPU sent all 50 connections to one loop
// when one client thread made them; with the client's connections made
// from two threads pinned one per CPU, it split them 25/25 and gave the
// highest throughput (63,000 to 79,000 msg/s against 61,000 to 67,000).
// So: hash by default; CPU steering when the traffic arrives spread over
// CPUs (RSS/RPS, several client threads); the hand-off where exact
// connection counts matter more than one post per connection.
type Balance uint8

const (
	// BalanceReusePort: every loop listens on the address with
	// SO_REUSEPORT and accepts its own connections; the kernel picks the
	// listener by a hash of the connection's 4-tuple. No connection
	// crosses loops, nothing is shared; the spread is statistical
	// (binomial: with 2 loops and 50 connections, 25±3.5).
	BalanceReusePort Balance = iota
	// BalanceHandOff: loop 0 listens and accepts, and hands connections
	// round-robin to every loop through its door. The spread of
	// connections is exact; each hand-off costs a cross-loop post, and
	// loop 0 does every accept (and serves its share).
	BalanceHandOff
	// BalanceCPU is BalanceReusePort with each listener marked with its
	// loop's CPU (SO_INCOMING_CPU; needs Pin): the kernel (Linux 6.1 and
	// later) gives a connection to the loop pinned on the CPU that
	// received it, falling back to the hash when none is. This keeps a
	// connection's packets and its loop on one CPU when the NIC spreads
	// flows over CPUs (RSS/RPS) — but on loopback the receiving CPU is
	// the one the client's connect ran on, so one client thread sends
	// every connection to one loop.
	BalanceCPU
)

func (b Balance) String() string {
	switch b {
	case BalanceReusePort:
		return "reuseport"
	case BalanceHandOff:
		return "handoff"
	case BalanceCPU:
		return "cpu"
	}
	return fmt.Sprintf("Balance(%d)", uint8(b))
}

// ParseBalance is the inverse of Balance.String.
func ParseBalance(s string) (Balance, error) {
	for _, b := range []Balance{BalanceReusePort, BalanceHandOff, BalanceCPU} {
		if s == b.String() {
			return b, nil
		}
	}
	return 0, fmt.Errorf("asyncdispatch: unknown balance %q (reuseport, handoff or cpu)", s)
}

// LoopFailure is a failure of one loop of a group: a Poll that failed (a
// callback's panic, an AsyncCheck failure, a poller error), a panic that
// escaped the loop (a double completion), or a listener that could not
// accept any more. After a Poll failure or a panic the loop is stopped;
// after an accept failure only that listener is.
type LoopFailure struct {
	Loop int
	Err  error
	// Stopped: the loop stopped because of this failure.
	Stopped bool
}

func (f LoopFailure) Error() string {
	if f.Stopped {
		return fmt.Sprintf("asyncdispatch: loop %d failed and stopped: %v", f.Loop, f.Err)
	}
	return fmt.Sprintf("asyncdispatch: loop %d: %v", f.Loop, f.Err)
}

func (f LoopFailure) Unwrap() error { return f.Err }

// Group is N loops serving together (see GroupConfig, Serve, RunOn).
type Group struct {
	cfg   GroupConfig
	loops []*groupLoop

	// mu guards what follows; the loops take it only when they fail or
	// stop, never on their hot paths.
	mu       sync.Mutex
	state    groupState
	failures []LoopFailure
	nserve   int // Serve calls that succeeded
	// serveMu orders Serve calls and Shutdown; no loop ever takes it.
	serveMu sync.Mutex
}

type groupState uint8

const (
	groupRunning groupState = iota
	groupShuttingDown
	groupClosed
)

// groupLoop is one loop of a group.
type groupLoop struct {
	g   *Group
	idx int
	cpu int // -1: not pinned
	d   *Dispatcher
	// exited is closed when the loop's goroutine has returned.
	exited chan struct{}
	// stopped is set once, when the loop stops running.
	stopped atomic.Bool

	// Owned by the loop's goroutine:
	// serving holds one entry per Serve call, in order (group_serve.go).
	serving []*serving

	// Under g.mu: the loop's failures, and its counters when it stopped.
	nfail int
	final LoopStats
}

// NewGroup starts cfg.Loops loops (see GroupConfig) and returns once they
// all run. Close (or Shutdown) stops them.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if cfg.Loops < 0 {
		return nil, fmt.Errorf("%w: Loops %d", ErrNegative, cfg.Loops)
	}
	if cfg.Loops > MaxLoops {
		return nil, fmt.Errorf("asyncdispatch: Loops %d is more than MaxLoops (%d)", cfg.Loops, MaxLoops)
	}
	if cfg.Balance > BalanceCPU {
		return nil, fmt.Errorf("asyncdispatch: unknown balance %v", cfg.Balance)
	}
	if cfg.Balance == BalanceCPU && !cfg.Pin {
		return nil, errors.New("asyncdispatch: BalanceCPU needs pinned loops (Pin)")
	}
	n := cfg.Loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	var cpus []int
	if cfg.Pin {
		var err error
		if cpus, err = allowedCPUs(); err != nil {
			return nil, err
		}
	}
	g := &Group{cfg: cfg, loops: make([]*groupLoop, n)}
	ready := make(chan error, n)
	for i := range g.loops {
		l := &groupLoop{g: g, idx: i, cpu: -1, exited: make(chan struct{})}
		if cpus != nil {
			l.cpu = cpus[i%len(cpus)]
		}
		g.loops[i] = l
		go l.main(ready)
	}
	var first error
	for range g.loops {
		if err := <-ready; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		g.Close()
		return nil, first
	}
	return g, nil
}

// Len is the number of loops.
func (g *Group) Len() int { return len(g.loops) }

// Loop returns the dispatcher of loop i. It belongs to the loop's
// goroutine: from elsewhere use its doors (CallSoonThreadSafe,
// CompleteFrom, Wait) or RunOn.
func (g *Group) Loop(i int) *Dispatcher { return g.loops[i].d }

// CPU is the CPU loop i is pinned to, -1 if it is not.
func (g *Group) CPU(i int) int { return g.loops[i].cpu }

// Failures returns the failures of the group's loops so far, in the order
// they were reported.
func (g *Group) Failures() []LoopFailure {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]LoopFailure(nil), g.failures...)
}

// main is the loop's goroutine.
func (l *groupLoop) main(ready chan<- error) {
	defer close(l.exited)
	// A CPU profile tells the loops apart by this label (go tool pprof
	// -tagfocus loop=0); the coroutines the loop starts inherit it.
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("loop", strconv.Itoa(l.idx))))
	runtime.LockOSThread()
	if l.cpu >= 0 {
		// The thread's mask is narrowed from here on, so the thread must
		// not serve other goroutines after the loop: it stays locked, and
		// Go ends it when this goroutine returns.
		if err := pinThread(l.cpu); err != nil {
			l.stopped.Store(true)
			ready <- fmt.Errorf("asyncdispatch: loop %d: pin to CPU %d: %w", l.idx, l.cpu, err)
			return
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	d, err := NewDispatcher()
	if err != nil {
		l.stopped.Store(true)
		ready <- err
		return
	}
	l.d = d
	// The loop has something pending for as long as it lives: RunForever
	// then waits for posts instead of returning ErrNoWork. Close lets it
	// go with everything else.
	NewExternalFuture[Void](d, "Group")
	ready <- nil
	l.run()
}

// run drives the loop until Close, or until it fails.
func (l *groupLoop) run() {
	d := l.d
	var fail error
	func() {
		defer func() {
			if p := recover(); p != nil {
				// A broken invariant (a double completion) escaped Poll:
				// this loop stops; the process and the other loops go on.
				fail = &PanicError{Value: p, Stack: debug.Stack(), Proc: fmt.Sprintf("loop %d", l.idx)}
			}
		}()
		fail = d.RunForever()
	}()
	stats := l.stats()
	if !d.closed {
		func() {
			defer func() { recover() }() // a teardown after a broken invariant
			d.Close()
		}()
	}
	l.stopped.Store(true)
	stats.Loop, stats.CPU, stats.Stopped = l.idx, l.cpu, true
	g := l.g
	g.mu.Lock()
	l.final = stats
	var f LoopFailure
	if fail != nil {
		f = LoopFailure{Loop: l.idx, Err: fail, Stopped: true}
		g.failures = append(g.failures, f)
		l.nfail++
	}
	l.final.Failures = l.nfail
	g.mu.Unlock()
	if fail != nil && g.cfg.OnFailure != nil {
		g.cfg.OnFailure(f)
	}
}

// report records a failure that does not stop the loop (a listener that
// cannot accept); on the loop's goroutine.
func (l *groupLoop) report(err error) {
	g := l.g
	f := LoopFailure{Loop: l.idx, Err: err}
	g.mu.Lock()
	g.failures = append(g.failures, f)
	l.nfail++
	g.mu.Unlock()
	if g.cfg.OnFailure != nil {
		g.cfg.OnFailure(f)
	}
}

// onEach runs fn on every loop that still runs, on the loop's goroutine,
// and returns once each has run it or stopped without running it.
func (g *Group) onEach(fn func(l *groupLoop)) {
	var wg sync.WaitGroup
	for _, l := range g.loops {
		if l.d == nil {
			continue
		}
		wg.Add(1)
		if l.d.postOr(func() { defer wg.Done(); fn(l) }, wg.Done) != nil {
			wg.Done()
		}
	}
	wg.Wait()
}

// Close stops every loop at once: each dispatcher is closed (its
// connections dropped, its procedures unwound, its descriptors closed)
// and Close returns when their goroutines have ended. For a graceful
// stop use Shutdown. A second Close returns ErrClosed.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.state == groupClosed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.state = groupClosed
	g.mu.Unlock()
	g.closeLoops()
	return nil
}

func (g *Group) closeLoops() {
	g.onEach(func(l *groupLoop) { l.d.Close() })
	for _, l := range g.loops {
		<-l.exited
	}
}

// Shutdown stops the group gracefully: every loop stops accepting (its
// listeners are closed: connections still in a listener's backlog are
// reset by the kernel), every service is told to finish the connections
// it has (Service.Shutdown(true)), and Shutdown waits until they all have
// — or until ctx ends, when the services are told to drop what is left
// (Shutdown(false)). Then it closes the group as Close does. It returns
// nil if every connection finished, ctx's error if the deadline cut them
// off, ErrClosed if the group was closed or shut down already.
func (g *Group) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if g.state != groupRunning {
		g.mu.Unlock()
		return ErrClosed
	}
	g.state = groupShuttingDown
	g.mu.Unlock()
	g.serveMu.Lock() // a Serve under way finishes first
	g.serveMu.Unlock()
	// Stop accepting everywhere first: hand-offs already posted then
	// reach their loops before the drain request below, which is posted
	// after them.
	g.onEach(func(l *groupLoop) { l.stopAccepting() })
	drained := make(chan struct{}, len(g.loops))
	waiting := 0
	for _, l := range g.loops {
		if l.d == nil {
			continue
		}
		waiting++
		signal := func() { drained <- struct{}{} }
		if l.d.postOr(func() { l.drain(signal) }, signal) != nil {
			signal()
		}
	}
	var err error
wait:
	for ; waiting > 0; waiting-- {
		select {
		case <-drained:
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	if err != nil {
		g.onEach(func(l *groupLoop) { l.dropAll() })
	}
	g.mu.Lock()
	closed := g.state == groupClosed // Close was called meanwhile
	g.state = groupClosed
	g.mu.Unlock()
	if !closed {
		g.closeLoops()
	}
	return err
}
