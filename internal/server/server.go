// Package server holds the TCP servers of cmd/asyncdispatch — an echo
// server and a small HTTP/1.1 plaintext server — each running on one
// Dispatcher, so that the command, its demo and the benchmarks share one
// implementation.
//
// What both servers keep true, so that a slow or hostile peer cannot pin
// memory or a connection slot for good:
//   - a connection holds a bounded amount of memory: its coroutine, a read
//     buffer that grows only up to a fixed maximum, and (HTTP) a response
//     buffer flushed whenever it passes a fixed size;
//   - a connection that makes no progress for IdleTimeout is dropped by
//     one sweeper timer per server (no timer per connection or per read:
//     progress costs one store of a coarse clock);
//   - Shutdown closes the listener and drops every connection; Done
//     finishes once the accept loop and every connection procedure have
//     returned and every socket is closed.
//
// Everything here runs on the dispatcher's goroutine, like any async
// procedure: no locks.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Listen resolves addr ("host:port") and listens on it with d. Unlike
// Dispatcher.Listen it accepts a host name (resolved at once, blocking, so
// call it before the loop runs). An empty host means every address.
func Listen(d *ad.Dispatcher, addr string) (ad.AsyncFD, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ad.InvalidFD, err
	}
	if host != "" && net.ParseIP(host) == nil {
		ips, err := net.DefaultResolver.LookupHost(context.Background(), host)
		if err != nil {
			return ad.InvalidFD, err
		}
		if len(ips) == 0 {
			return ad.InvalidFD, fmt.Errorf("%s: no address", host)
		}
		host = ips[0]
	}
	return d.Listen("tcp", net.JoinHostPort(host, port))
}

// AddrOf is the "host:port" a socket is bound to.
func AddrOf(fd ad.AsyncFD) (string, error) {
	host, port, err := ad.GetLocalAddr(fd)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// conn is what every connection of a server has, whatever its kind.
type conn struct {
	fd ad.AsyncFD
	// idx is the connection's place in Server.conns.
	idx int
	// deadline is the tick after which the connection is dropped unless it
	// makes progress (touch) first.
	deadline int64
	// fut is the connection's async procedure (nil for a connection run by
	// callbacks): cancelling it drops the connection.
	fut *ad.Future[ad.Void]
	// expired: the sweeper or Shutdown has dropped the connection already.
	expired bool
}

// kind is what differs between the servers: how a connection is served.
type kind interface {
	// start serves a new connection, registered as c.
	start(s *Server, c *conn)
	// expire drops a connection that timed out or is shut down.
	expire(s *Server, c *conn)
	// tick runs on every sweeper tick.
	tick(now time.Time)
}

// Server is a running server: a listener, its accept loop, the live
// connections and the sweeper.
type Server struct {
	d    *ad.Dispatcher
	ln   ad.AsyncFD
	addr string
	kind kind
	logf func(format string, args ...any)

	// idleTicks is IdleTimeout in ticks (0: never drop idle connections);
	// ticks is the coarse clock, advanced by timer every period.
	idleTicks int64
	ticks     int64
	period    time.Duration
	timer     *ad.Timer

	// conns are the live connections (conn.idx is the index).
	conns    []*conn
	accepted uint64

	// accepting: the accept loop runs; closed: Shutdown or Drain was
	// called or the accept loop failed (no connection is taken any more);
	// dropped: Shutdown dropped the connections; done finishes when the
	// accept loop is over, closed is set and conns is empty; err is the
	// accept loop's error.
	accepting bool
	closed    bool
	dropped   bool
	done      *ad.Future[ad.Void]
	err       error
}

// newServer starts the accept loop on ln (which the server owns from now
// on: Shutdown closes it) with the sweeper ticking every period. With
// ln == ad.InvalidFD there is no accept loop: connections come through
// Adopt (a loop of an ad.Group, whose listener the group runs).
func newServer(d *ad.Dispatcher, ln ad.AsyncFD, k kind, idle, period time.Duration, logf func(string, ...any)) (*Server, error) {
	var addr string
	if ln != ad.InvalidFD {
		var err error
		if addr, err = AddrOf(ln); err != nil {
			return nil, err
		}
	}
	s := &Server{d: d, ln: ln, addr: addr, kind: k, logf: logf, period: period,
		done: ad.NewFuture[ad.Void](d, "server.Done")}
	if idle > 0 {
		s.idleTicks = s.ticksFor(idle)
	}
	var err error
	s.timer, err = d.AddTimer(period, false, s.sweep)
	if err != nil {
		return nil, err
	}
	if ln != ad.InvalidFD {
		s.accepting = true
		ad.Async(d, s.acceptLoop)
	}
	return s, nil
}

// Addr is the address the server listens on ("127.0.0.1:8080").
func (s *Server) Addr() string { return s.addr }

// Conns is the number of live connections.
func (s *Server) Conns() int { return len(s.conns) }

// Accepted is the number of connections accepted so far.
func (s *Server) Accepted() uint64 { return s.accepted }

// Done finishes when the server has stopped: after Shutdown, once every
// connection is closed; it fails if the accept loop failed.
func (s *Server) Done() *ad.Future[ad.Void] { return s.done }

func (s *Server) acceptLoop(co *ad.Coro) (ad.Void, error) {
	defer func() {
		s.accepting = false
		s.checkDone()
	}()
	for {
		fd, err := ad.Await(co, s.d.Accept(s.ln, ad.DefaultFlags, false))
		if err != nil {
			if !s.closed && !errors.Is(err, ad.ErrClosed) && !errors.Is(err, ad.ErrCancelled) {
				// Descriptor exhaustion never gets here (the library backs
				// off by itself): this listener cannot accept any more.
				s.err = err
				s.log("accept: %v", err)
				s.Shutdown()
			}
			return ad.Void{}, nil
		}
		s.Adopt(fd)
	}
}

// Adopt serves fd, a connection accepted elsewhere and registered with
// the server's dispatcher; the server owns it from now on. After
// Shutdown or Drain it is closed at once.
func (s *Server) Adopt(fd ad.AsyncFD) {
	if s.closed {
		s.d.CloseSocket(fd)
		return
	}
	// Latency over batching, as the servers we compare with do; a failure
	// only costs latency.
	unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	s.accepted++
	c := &conn{fd: fd, idx: len(s.conns)}
	s.conns = append(s.conns, c)
	s.touch(c)
	s.kind.start(s, c)
}

// touch records progress on c: it may stay idle for IdleTimeout from now.
func (s *Server) touch(c *conn) {
	if s.idleTicks == 0 {
		c.deadline = math.MaxInt64
		return
	}
	c.deadline = addTicks(s.ticks, s.idleTicks)
}

// lingerFor gives c at most d more before the sweeper drops it, progress
// or not.
func (s *Server) lingerFor(c *conn, d time.Duration) {
	c.deadline = addTicks(s.ticks, s.ticksFor(d))
}

// ticksFor is d in sweeper ticks, rounded up. It divides before it
// rounds: d+period-1 would wrap to a negative count for a d near
// math.MaxInt64 (an idle timeout of "forever" spelled as a duration),
// and a negative count is a deadline already passed.
func (s *Server) ticksFor(d time.Duration) int64 {
	n := int64(d / s.period)
	if d%s.period != 0 {
		n++
	}
	return n
}

// addTicks is the tick n ticks after now, saturating at math.MaxInt64
// (never) instead of wrapping into the past.
func addTicks(now, n int64) int64 {
	if n > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + n
}

// remove closes c's socket and forgets c. Every connection passes here
// exactly once, when its procedure (or callback) is done with it.
func (s *Server) remove(c *conn) {
	last := len(s.conns) - 1
	if c.idx > last || s.conns[c.idx] != c {
		return
	}
	s.conns[c.idx] = s.conns[last]
	s.conns[c.idx].idx = c.idx
	s.conns[last] = nil
	s.conns = s.conns[:last]
	s.d.CloseSocket(c.fd)
	s.checkDone()
}

// sweep is the sweeper timer: it advances the coarse clock and drops the
// connections whose deadline has passed.
func (s *Server) sweep(ad.AsyncFD) bool {
	s.ticks++
	s.kind.tick(time.Now())
	s.expire(false)
	return false
}

// expire drops every connection not dropped yet whose deadline has
// passed, or all of them.
func (s *Server) expire(all bool) {
	// Backwards: an expire that removes its connection at once moves the
	// last one, already looked at, into its slot.
	for i := len(s.conns) - 1; i >= 0; i-- {
		if i >= len(s.conns) {
			continue
		}
		if c := s.conns[i]; !c.expired && (all || s.ticks > c.deadline) {
			c.expired = true
			s.kind.expire(s, c)
		}
	}
}

// Shutdown stops accepting, closes the listener and drops every
// connection. Done finishes once they are all gone. A second call does
// nothing.
func (s *Server) Shutdown() {
	if s.dropped {
		return
	}
	s.dropped = true
	s.stopAccepting()
	s.timer.Stop()
	s.expire(true)
	s.checkDone()
}

// Drain stops accepting and closes the listener but lets the
// connections run until their clients end them (or the idle timeout, or
// a Shutdown, drops them). Done finishes once they are all gone.
func (s *Server) Drain() {
	s.stopAccepting()
	s.checkDone()
}

func (s *Server) stopAccepting() {
	if s.closed {
		return
	}
	s.closed = true
	if s.ln != ad.InvalidFD {
		s.d.CloseSocket(s.ln)
	}
}

func (s *Server) checkDone() {
	if !s.closed || s.accepting || len(s.conns) > 0 || s.done.Finished() {
		return
	}
	s.timer.Stop()
	if s.err != nil {
		s.done.Fail(s.err)
	} else {
		s.done.Complete(ad.Void{})
	}
}

// expireProc drops a connection served by an async procedure: the
// procedure's pending Await returns ErrCancelled and it unwinds.
func expireProc(c *conn) {
	if c.fut != nil {
		c.fut.Cancel()
	}
}

func (s *Server) log(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

// bufPool lends read buffers to connections that have data to read, so
// that an idle connection holds none: a connection waits for readability
// (Coro.WaitReadable) without a buffer, borrows one, receives, and gives
// it back when it has sent what it read. Usually a single buffer serves
// every connection in turn; one is out per connection whose send is
// waiting for its peer (bounded by the idle timeout). Loop-owned, no lock.
type bufPool struct {
	size int
	free [][]byte
}

// maxFree bounds the buffers kept for reuse after a burst.
const maxFree = 64

func (p *bufPool) get() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, p.size)
}

// put gives b back; buffers of another size (grown by their borrower)
// are left to the garbage collector.
func (p *bufPool) put(b []byte) {
	if cap(b) == p.size && len(p.free) < maxFree {
		p.free = append(p.free, b[:p.size])
	}
}
