package server

import (
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// EchoConfig configures an echo server. The zero value is usable.
type EchoConfig struct {
	// IdleTimeout drops a connection that sends nothing for this long
	// (0: never).
	IdleTimeout time.Duration
	// BufferSize is the size of a read (0: 16 KiB). Buffers are lent to
	// connections only while they have data to echo, so an idle
	// connection holds none.
	BufferSize int
	// Callbacks serves connections with AddRead/AddWrite callbacks and
	// one loop-wide read buffer, as a C epoll server does, instead of an
	// async procedure per connection: the leanest form the library
	// allows, kept for comparison.
	Callbacks bool
	// Logf, if set, receives the server's errors.
	Logf func(format string, args ...any)
}

// ServeEcho serves the echo protocol on the listening socket ln, which the
// server owns from now on: every byte a client sends is sent back.
func ServeEcho(d *ad.Dispatcher, ln ad.AsyncFD, cfg EchoConfig) (*Server, error) {
	size := cfg.BufferSize
	if size <= 0 {
		size = 16 << 10
	}
	e := &echo{pool: bufPool{size: size}, callbacks: cfg.Callbacks}
	if e.callbacks {
		e.shared = make([]byte, size)
	}
	return newServer(d, ln, e, cfg.IdleTimeout, sweepPeriod(cfg.IdleTimeout), cfg.Logf)
}

// sweepPeriod is the sweeper's tick: a quarter of the idle timeout (so a
// connection is dropped between 1 and 1.25 timeouts after its last
// progress), between 10 ms and 1 s.
func sweepPeriod(idle time.Duration) time.Duration {
	if idle <= 0 {
		return time.Second
	}
	return min(max(idle/4, 10*time.Millisecond), time.Second)
}

type echo struct {
	pool      bufPool
	callbacks bool
	// shared is the callback style's read buffer: a callback reads into
	// it and writes it back before returning, so one buffer serves every
	// connection.
	shared []byte
}

func (e *echo) tick(time.Time) {}

func (e *echo) start(s *Server, c *conn) {
	if e.callbacks {
		e.startCallbacks(s, c)
		return
	}
	c.fut = ad.Async(s.d, func(co *ad.Coro) (ad.Void, error) { return e.serve(co, s, c) })
}

func (e *echo) expire(s *Server, c *conn) {
	if e.callbacks {
		s.remove(c) // drops the callbacks with the socket
		return
	}
	expireProc(c)
}

// serve is the async procedure of one connection: wait until the peer
// has sent something, receive it into a borrowed buffer, send it back,
// return the buffer. The Coro forms of the operations reuse one operation
// object per coroutine, so a message costs no allocation; and since
// WaitReadable always waits for the poller (level-triggered, so data that
// is already there is reported by the next poll), each message makes one
// recv and one send — no recv that finds nothing — and every connection
// gets its turn: one whose peer keeps the socket full cannot keep the
// loop to itself.
func (e *echo) serve(co *ad.Coro, s *Server, c *conn) (ad.Void, error) {
	defer s.remove(c)
	for {
		// An error here is a cancellation (the sweeper or Shutdown) or
		// the socket being closed.
		if co.WaitReadable(c.fd) != nil {
			return ad.Void{}, nil
		}
		buf := e.pool.get()
		n, err := co.RecvInto(c.fd, buf, ad.DefaultFlags)
		if err == nil && n > 0 {
			err = co.Send(c.fd, buf[:n], ad.DefaultFlags)
		}
		e.pool.put(buf)
		if err != nil || n == 0 {
			// End of file, a reset (SafeDisconn reports it as end of
			// file), a cancellation, or an error of the socket.
			return ad.Void{}, nil
		}
		s.touch(c)
	}
}

// cbConn is a connection served by callbacks.
type cbConn struct {
	*conn
	s *Server
	e *echo
	// pending is what the peer did not take yet; while it is not empty the
	// connection waits for writability instead of reading (back-pressure).
	pending []byte
	// onRead and onWrite are the bound callbacks, made once.
	onRead, onWrite ad.Callback
}

func (e *echo) startCallbacks(s *Server, c *conn) {
	cc := &cbConn{conn: c, s: s, e: e}
	cc.onRead, cc.onWrite = cc.read, cc.write
	if err := s.d.AddRead(c.fd, cc.onRead); err != nil {
		s.log("echo: AddRead: %v", err)
		s.remove(c)
	}
}

// read is the read callback: one read per readiness, written straight
// back (the write is tried at once; what the socket does not take waits
// in pending). Go ignores SIGPIPE on sockets, so a plain write is safe.
func (cc *cbConn) read(fd ad.AsyncFD) bool {
	buf := cc.e.shared
	n, err := unix.Read(int(fd), buf)
	for err == unix.EINTR {
		n, err = unix.Read(int(fd), buf)
	}
	if err == unix.EAGAIN {
		return false
	}
	if err != nil || n <= 0 {
		cc.s.remove(cc.conn)
		return true
	}
	cc.s.touch(cc.conn)
	w, err := unix.Write(int(fd), buf[:n])
	for err == unix.EINTR {
		w, err = unix.Write(int(fd), buf[:n])
	}
	if err == unix.EAGAIN {
		w, err = 0, nil
	}
	if err != nil {
		cc.s.remove(cc.conn)
		return true
	}
	if w == n {
		return false
	}
	cc.pending = append(cc.pending[:0], buf[w:n]...)
	if err := cc.s.d.AddWrite(fd, cc.onWrite); err != nil {
		cc.s.remove(cc.conn)
	}
	return true // stop reading until pending is written
}

// write is the write callback of a connection with pending bytes.
func (cc *cbConn) write(fd ad.AsyncFD) bool {
	w, err := unix.Write(int(fd), cc.pending)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	if err != nil {
		cc.s.remove(cc.conn)
		return true
	}
	cc.s.touch(cc.conn)
	cc.pending = cc.pending[w:]
	if len(cc.pending) > 0 {
		return false
	}
	cc.pending = nil
	if err := cc.s.d.AddRead(fd, cc.onRead); err != nil {
		cc.s.remove(cc.conn)
	}
	return true
}
