package asyncdispatch

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Serving one address from every loop of a group.
//
// Each Serve call makes one Service per loop, on that loop, and gives it
// the connections that reach the loop: with BalanceReusePort and
// BalanceCPU every loop listens on the address (SO_REUSEPORT) and
// accepts its own; with BalanceHandOff the first running loop accepts and
// hands connections round-robin to every loop through their doors.
//
// What must stay true:
//   - a connection belongs to exactly one loop at a time: a handed-off
//     descriptor leaves the acceptor's table (Unregister) before it is
//     posted, and the post either runs on the target (which registers it
//     and gives it to its service) or is dropped by the target's teardown,
//     which closes it — no descriptor is leaked or served twice;
//   - no listener accepts before every loop's service exists (a hand-off
//     finds its target's service), and no service is given a connection
//     after it was told to shut down: Shutdown closes the listeners first
//     and waits, then posts the drain requests, which are queued behind
//     every hand-off posted before;
//   - a service is only ever called on its own loop's goroutine.

// Service is what a loop of a group runs behind the group's listeners:
// one per loop per Serve call, made on that loop by Serve's newService.
// Every method is called on that loop's goroutine.
type Service interface {
	// ServeConn takes over conn, a connection accepted for this loop and
	// registered with its dispatcher; the service closes it (CloseSocket)
	// when it is done with it.
	ServeConn(conn AsyncFD)
	// Shutdown says no connection will come any more. graceful: finish
	// the connections being served, closing each as it ends; otherwise
	// drop them all now. Shutdown(true) may be followed by
	// Shutdown(false) when the group's deadline passes.
	Shutdown(graceful bool)
	// Done finishes once the service has been shut down and holds no
	// connection any more.
	Done() *Future[Void]
}

// serving is one Serve call on one loop (loop-owned).
type serving struct {
	k   int
	svc Service
	// ln is the loop's listener for this Serve, InvalidFD if it does
	// not accept (BalanceHandOff, but for the acceptor); stopping: the
	// group closed it on purpose.
	ln       AsyncFD
	stopping bool
	// next is the acceptor's round-robin position (BalanceHandOff).
	next int
	// served counts the connections given to svc.
	served uint64
	// draining: the service was told to shut down.
	draining bool
}

// Serve listens on address (network "tcp", "tcp4" or "tcp6", as Listen
// takes them; BalanceHandOff takes any stream network Listen does) with
// every loop and serves the connections with a Service per loop, made by
// newService on that loop. It returns the address listened on ("host:port",
// with the port chosen if address asked for port 0) once every loop
// serves, or the first error (nothing is left listening then). Serve may
// be called several times, for several addresses; loops that have
// stopped are skipped.
func (g *Group) Serve(network, address string, newService func(d *Dispatcher) (Service, error)) (string, error) {
	if newService == nil {
		return "", ErrNilCallback
	}
	// Serve calls (and Shutdown) run one at a time. g.mu is not held
	// while waiting for the loops: a loop that fails meanwhile takes it.
	g.serveMu.Lock()
	defer g.serveMu.Unlock()
	g.mu.Lock()
	state := g.state
	g.mu.Unlock()
	if state != groupRunning {
		return "", ErrClosed
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", addrError("invalid address", address)
	}
	k := g.nserve
	handOff := g.cfg.Balance == BalanceHandOff
	bound, accepting := address, false
	var serveErr error
	set := 0
	for _, l := range g.loops {
		listen := !handOff || !accepting
		var (
			ln  AsyncFD
			err error
		)
		if !g.onLoop(l, func() { ln, err = l.startServing(k, network, bound, listen, newService) }) {
			continue // stopped
		}
		if err != nil {
			serveErr = fmt.Errorf("asyncdispatch: Serve %s on loop %d: %w", address, l.idx, err)
			break
		}
		set++
		if listen && !accepting {
			_, port, err := GetLocalAddr(ln)
			if err != nil {
				serveErr = err
				break
			}
			bound = net.JoinHostPort(host, strconv.Itoa(port))
			accepting = true
		}
	}
	if serveErr == nil && set == 0 {
		serveErr = ErrClosed
	}
	if serveErr != nil {
		g.onEach(func(l *groupLoop) { l.stopServing(k) })
		return "", serveErr
	}
	g.nserve++
	g.onEach(func(l *groupLoop) { l.startAccepting(k) })
	return bound, nil
}

// onLoop runs fn on l's goroutine and waits for it; it reports false if
// the loop has stopped (fn did not run).
func (g *Group) onLoop(l *groupLoop, fn func()) bool {
	if l.d == nil {
		return false
	}
	var wg sync.WaitGroup
	ran := false
	wg.Add(1)
	err := l.d.postOr(func() { defer wg.Done(); fn(); ran = true }, wg.Done)
	if err != nil {
		return false
	}
	wg.Wait()
	return ran
}

// startServing makes the loop's service for Serve call k and, if listen,
// its listener; accepting starts later (startAccepting).
func (l *groupLoop) startServing(k int, network, address string, listen bool, newService func(*Dispatcher) (Service, error)) (AsyncFD, error) {
	for len(l.serving) < k {
		// A Serve this loop missed (it was busy failing): a placeholder
		// keeps the indices aligned.
		l.serving = append(l.serving, nil)
	}
	l.serving = l.serving[:k]
	svc, err := newService(l.d)
	if err != nil {
		return InvalidFD, err
	}
	if svc == nil {
		return InvalidFD, errors.New("newService returned a nil Service")
	}
	s := &serving{k: k, svc: svc, ln: InvalidFD, next: l.idx}
	if listen {
		if l.g.cfg.Balance == BalanceHandOff {
			s.ln, err = l.d.Listen(network, address)
		} else {
			s.ln, err = l.listenReusePort(network, address)
		}
		if err != nil {
			svc.Shutdown(false)
			return InvalidFD, err
		}
	}
	l.serving = append(l.serving, s)
	return s.ln, nil
}

// stopServing undoes startServing for a Serve that failed elsewhere.
func (l *groupLoop) stopServing(k int) {
	if k >= len(l.serving) {
		return
	}
	if s := l.serving[k]; s != nil {
		l.closeListener(s)
		s.draining = true
		s.svc.Shutdown(false)
	}
	l.serving = l.serving[:k]
}

// startAccepting starts the accept procedure of Serve call k, if this
// loop listens for it.
func (l *groupLoop) startAccepting(k int) {
	if k >= len(l.serving) {
		return
	}
	if s := l.serving[k]; s != nil && s.ln != InvalidFD {
		Async(l.d, func(co *Coro) (Void, error) { return l.accept(co, s) })
	}
}

// accept is a listener's accept procedure.
func (l *groupLoop) accept(co *Coro, s *serving) (Void, error) {
	handOff := l.g.cfg.Balance == BalanceHandOff
	for {
		fd, err := Await(co, l.d.Accept(s.ln, DefaultFlags, false))
		if err != nil {
			if s.stopping || errors.Is(err, ErrClosed) {
				return Void{}, nil
			}
			// Descriptor exhaustion never gets here (Accept backs off by
			// itself): this listener cannot accept any more. The loop
			// goes on serving its connections.
			l.report(fmt.Errorf("accept: %w", err))
			l.closeListener(s)
			return Void{}, nil
		}
		if handOff {
			l.handOff(s, fd)
		} else {
			l.give(s, fd)
		}
	}
}

// give hands conn to the loop's own service for s.
func (l *groupLoop) give(s *serving, conn AsyncFD) {
	if s.draining {
		// Shut down already (a Serve that raced a Shutdown).
		l.d.CloseSocket(conn)
		return
	}
	s.served++
	s.svc.ServeConn(conn)
}

// handOff gives conn, accepted by this loop, to the next loop in turn
// that still runs.
func (l *groupLoop) handOff(s *serving, conn AsyncFD) {
	loops := l.g.loops
	for range loops {
		t := loops[s.next]
		s.next++
		if s.next == len(loops) {
			s.next = 0
		}
		if t == l {
			break
		}
		if t.stopped.Load() {
			continue
		}
		if err := l.d.Unregister(conn); err != nil {
			unix.Close(int(conn))
			return
		}
		k, raw := s.k, int(conn)
		if t.d.postOr(func() { t.adopt(k, raw) }, func() { unix.Close(raw) }) == nil {
			return
		}
		// t stopped meanwhile: take the connection back.
		if _, err := l.d.register(conn, true); err != nil {
			unix.Close(raw)
			return
		}
	}
	l.give(s, conn)
}

// adopt takes a connection handed off by the acceptor of Serve call k.
func (l *groupLoop) adopt(k int, raw int) {
	var s *serving
	if k < len(l.serving) {
		s = l.serving[k]
	}
	if s == nil || s.draining {
		unix.Close(raw)
		return
	}
	if _, err := l.d.register(AsyncFD(raw), true); err != nil {
		unix.Close(raw)
		return
	}
	l.give(s, AsyncFD(raw))
}

// closeListener closes s's listener once.
func (l *groupLoop) closeListener(s *serving) {
	if s.ln != InvalidFD && !s.stopping {
		s.stopping = true
		l.d.CloseSocket(s.ln)
	}
}

// stopAccepting closes every listener of the loop (Shutdown).
func (l *groupLoop) stopAccepting() {
	for _, s := range l.serving {
		if s != nil {
			l.closeListener(s)
		}
	}
}

// drain tells every service of the loop to finish its connections and
// calls done once they all have.
func (l *groupLoop) drain(done func()) {
	left := 1
	one := func() {
		if left--; left == 0 {
			done()
		}
	}
	for _, s := range l.serving {
		if s == nil || s.draining {
			continue
		}
		s.draining = true
		s.svc.Shutdown(true)
		left++
		s.svc.Done().AddCallback(one)
	}
	one()
}

// dropAll tells every service to drop its connections (the deadline
// passed).
func (l *groupLoop) dropAll() {
	for _, s := range l.serving {
		if s != nil {
			s.draining = true
			s.svc.Shutdown(false)
		}
	}
}

// HandleConns makes Serve's newService from a function that serves one
// connection: every connection gets an async procedure running h on its
// loop, and its socket is closed when h returns (h must not close it: the
// number may belong to a newer connection by then). A graceful Shutdown lets
// the procedures run to their end; a forced one cancels them (their
// pending Await returns ErrCancelled). h's error ends the connection and
// is otherwise ignored, but for a panic: that is a bug, and the loop
// fails with it (the group reports it and stops that loop, the others go
// on).
func HandleConns(h func(co *Coro, conn AsyncFD) error) func(d *Dispatcher) (Service, error) {
	return func(d *Dispatcher) (Service, error) {
		if h == nil {
			return nil, ErrNilCallback
		}
		return &connService{d: d, h: h, live: make(map[*Future[Void]]struct{}),
			done: newNamed[Void](d, "HandleConns")}, nil
	}
}

// connService is HandleConns's Service.
type connService struct {
	d    *Dispatcher
	h    func(co *Coro, conn AsyncFD) error
	live map[*Future[Void]]struct{}
	shut bool
	done *Future[Void]
}

func (s *connService) ServeConn(conn AsyncFD) {
	f := Async(s.d, func(co *Coro) (Void, error) {
		defer s.d.CloseSocket(conn)
		return Void{}, s.h(co, conn)
	})
	s.live[f] = struct{}{}
	f.AddCallback(func() {
		delete(s.live, f)
		var pe *PanicError
		if f.state == failed && errors.As(f.err, &pe) {
			f.markSeen()
			s.d.checkErr = append(s.d.checkErr, pe)
		} else {
			f.markSeen()
		}
		s.check()
	})
}

func (s *connService) Shutdown(graceful bool) {
	s.shut = true
	if !graceful {
		for f := range s.live {
			f.Cancel()
		}
	}
	s.check()
}

func (s *connService) check() {
	if s.shut && len(s.live) == 0 && !s.done.Finished() {
		s.done.Complete(Void{})
	}
}

func (s *connService) Done() *Future[Void] { return s.done }
