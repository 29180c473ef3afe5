package server

import (
	"bytes"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// HTTPConfig configures the HTTP server. The zero value is usable.
type HTTPConfig struct {
	// IdleTimeout drops a connection that makes no progress — completes
	// no request head, sends no body bytes, takes no response bytes — for
	// this long (0: never). A slow-loris head trickling in a byte at a
	// time is no progress.
	IdleTimeout time.Duration
	// MaxHeader bounds a request head, request line included (0: 8 KiB);
	// a longer one is answered 431 (414 if the request line alone is
	// longer) and the connection closed.
	MaxHeader int
	// MaxBody bounds a request body (0: 1 MiB, negative: no body at all);
	// a longer one is answered 413 and the connection closed. Bodies are
	// read and discarded.
	MaxBody int64
	// Logf, if set, receives the server's errors.
	Logf func(format string, args ...any)
}

// Body is what the HTTP server answers to every request.
const Body = "Hello, World!"

// Limits that are not configurable.
const (
	// flushAt: a batch of pipelined responses is sent once it reaches
	// this size, before more requests are parsed, so a client that
	// pipelines without reading cannot grow the response buffer.
	flushAt = 32 << 10
	// lingerTime and lingerBytes bound what is read and discarded after
	// the last response of a closing connection (shut down for writing
	// first), so that the client reads that response instead of a reset.
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
	// readBuf is the size of the read buffers lent to connections; a
	// connection whose request head does not fit grows its own, up to
	// the head limit.
	readBuf = 4096
)

// ServeHTTP serves HTTP/1.1 on the listening socket ln, which the server
// owns from now on: every request is answered 200, Content-Type
// text/plain, body Body. Keep-alive and pipelining follow RFC 9112: every
// complete request in the read buffer is answered, in order, and the
// answers to one read go out in one send; Connection: close and HTTP/1.0
// (keep-alive only if asked for) close after the response. See
// httpparse.go for what is refused.
func ServeHTTP(d *ad.Dispatcher, ln ad.AsyncFD, cfg HTTPConfig) (*Server, error) {
	h := &httpServer{maxHead: cfg.MaxHeader, maxBody: cfg.MaxBody}
	if h.maxHead <= 0 {
		h.maxHead = 8 << 10
	}
	switch {
	case h.maxBody == 0:
		h.maxBody = 1 << 20
	case h.maxBody < 0:
		h.maxBody = 0
	}
	// Room for the longest head or chunk line allowed plus the next read:
	// a full buffer always means a limit was passed.
	h.maxBuf = max(h.maxHead, maxChunkLine) + 1024
	h.in = bufPool{size: min(readBuf, h.maxBuf)}
	h.out = bufPool{size: flushAt + 1024}
	h.build(time.Now())
	return newServer(d, ln, h, cfg.IdleTimeout, sweepPeriod(cfg.IdleTimeout), cfg.Logf)
}

type httpServer struct {
	maxHead int
	maxBody int64
	maxBuf  int
	// in lends read buffers, out response buffers for batches of
	// pipelined answers; a connection holds one only while it has
	// something in it.
	in, out bufPool
	// resp are the complete responses, by [HEAD?][connection kind]; the
	// sweeper's tick makes new ones when the Date changes (new arrays:
	// a send in progress keeps the old ones alive).
	resp    [2][3][]byte
	dateSec int64
	date    []byte
}

// Connection kinds of a response.
const (
	connDefault = iota // HTTP/1.1 keep-alive: no header needed
	connKeepAlive
	connClose
)

func (h *httpServer) build(now time.Time) {
	h.dateSec = now.Unix()
	h.date = now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")
	for head := range 2 {
		for ck := range 3 {
			b := make([]byte, 0, 160)
			b = append(b, "HTTP/1.1 200 OK\r\nServer: asyncdispatch\r\nContent-Type: text/plain\r\nContent-Length: "...)
			b = strconv.AppendInt(b, int64(len(Body)), 10)
			b = append(b, "\r\nDate: "...)
			b = append(b, h.date...)
			b = append(b, "\r\n"...)
			switch ck {
			case connKeepAlive:
				b = append(b, "Connection: keep-alive\r\n"...)
			case connClose:
				b = append(b, "Connection: close\r\n"...)
			}
			b = append(b, "\r\n"...)
			if head == 0 {
				b = append(b, Body...)
			}
			h.resp[head][ck] = b
		}
	}
}

func (h *httpServer) tick(now time.Time) {
	if now.Unix() != h.dateSec {
		h.build(now)
	}
}

// response is the answer to r.
func (h *httpServer) response(r request) []byte {
	ck := connDefault
	switch {
	case !r.keepAlive:
		ck = connClose
	case r.http10:
		ck = connKeepAlive
	}
	head := 0
	if r.head {
		head = 1
	}
	return h.resp[head][ck]
}

var statusText = map[int]string{
	400: "Bad Request",
	413: "Content Too Large",
	414: "URI Too Long",
	431: "Request Header Fields Too Large",
	501: "Not Implemented",
	505: "HTTP Version Not Supported",
}

// errorResponse is the answer to a refused request; the connection closes
// after it. The answer to a HEAD request has no body (RFC 9110 §9.3.2),
// only the Content-Length that a GET would have been answered with.
func (h *httpServer) errorResponse(status int, head bool) []byte {
	text := strconv.Itoa(status) + " " + statusText[status]
	b := make([]byte, 0, 200)
	b = append(b, "HTTP/1.1 "+text+"\r\nServer: asyncdispatch\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(text)+1), 10)
	b = append(b, "\r\nDate: "...)
	b = append(b, h.date...)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	if head {
		return b
	}
	b = append(b, text...)
	return append(b, '\n')
}

// isHead reports whether the request head at the start of b (empty lines
// first or not, complete or not) is a HEAD request, for answering a
// refusal of a head that was not parsed.
func isHead(b []byte) bool {
	for len(b) > 0 && b[0] == '\n' || len(b) > 1 && b[0] == '\r' && b[1] == '\n' {
		if b[0] == '\r' {
			b = b[1:]
		}
		b = b[1:]
	}
	return bytes.HasPrefix(b, []byte("HEAD "))
}

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (h *httpServer) start(s *Server, c *conn) {
	c.fut = ad.Async(s.d, func(co *ad.Coro) (ad.Void, error) { return h.serve(co, s, c) })
}

func (h *httpServer) expire(s *Server, c *conn) { expireProc(c) }

// httpConn is one connection's state.
type httpConn struct {
	h *httpServer
	s *Server
	c *conn
	// buf[start:end] is received and not yet parsed (buf is nil, back in
	// the pool, while that is empty); scanned is where the search for
	// the end of an incomplete head resumes.
	buf                 []byte
	start, end, scanned int
	// state is what the bytes at start are: a head, or the body of the
	// request whose answer is pending.
	state   connState
	left    int64 // of a Content-Length body
	chunk   chunked
	pending []byte // the answer to send once the body is read
	closing bool   // close after the pending answer
	head    bool   // the request whose body is read is a HEAD
	// first is the only answer of the current batch, sent as it is
	// (prebuilt, no copy); out gathers a batch of several (borrowed from
	// the pool while it does).
	first []byte
	out   []byte
}

type connState uint8

const (
	stHead connState = iota
	stLength
	stChunked
)

// step is what process asks the connection procedure to do next.
type step uint8

const (
	needMore  step = iota // send the batch, then receive
	flushMore             // send the batch, then parse on
	closeNow              // send the batch, then close
)

// serve is the async procedure of one connection. It waits for
// readability before every receive (WaitReadable: no buffer held while
// idle, no recv that finds nothing, and a turn for every other connection
// between two reads, however fast this client pipelines), and uses the
// Coro forms of RecvInto and Send, which allocate nothing per request.
func (h *httpServer) serve(co *ad.Coro, s *Server, c *conn) (ad.Void, error) {
	hc := &httpConn{h: h, s: s, c: c}
	defer func() {
		hc.release()
		s.remove(c)
	}()
	for {
		if co.WaitReadable(c.fd) != nil {
			return ad.Void{}, nil // dropped by the sweeper or Shutdown
		}
		if !hc.makeRoom() {
			head := hc.head
			if hc.state == stHead {
				head = isHead(hc.buf[hc.start:hc.end])
			}
			hc.emit(h.errorResponse(431, head))
			hc.flush(co)
			hc.linger(co)
			return ad.Void{}, nil
		}
		n, err := co.RecvInto(c.fd, hc.buf[hc.end:], ad.DefaultFlags)
		if err != nil || n == 0 {
			return ad.Void{}, nil // end of file, reset (SafeDisconn), error
		}
		hc.end += n
		for {
			next := hc.process()
			if hc.flush(co) != nil {
				return ad.Void{}, nil
			}
			if next == closeNow {
				hc.linger(co)
				return ad.Void{}, nil
			}
			if next == needMore {
				break
			}
		}
		if hc.start == hc.end {
			hc.release() // idle again: hold no buffer
		}
	}
}

// process parses and answers everything complete in the buffer.
func (hc *httpConn) process() step {
	h := hc.h
	for hc.start < hc.end {
		if len(hc.out) >= flushAt {
			return flushMore
		}
		b := hc.buf[hc.start:hc.end]
		switch hc.state {
		case stHead:
			// The usual case, a whole head of a well-formed request at
			// the start of the buffer: one pass (scanHead) finds its
			// end and parses it. Everything else — a head in parts
			// (scanned: the rest of it came by earlier), a refusal, a
			// head over the limit, empty lines first — takes the
			// two-step path, which decides exactly as before.
			var (
				e      = -1
				req    request
				status int
			)
			if hc.scanned == 0 && b[0] != '\r' && b[0] != '\n' {
				e, req, status = scanHead(b)
			}
			if e < 0 || status != 0 || e > h.maxHead {
				e = findHeadEnd(b, hc.scanned)
				if e < 0 || e > h.maxHead {
					if e < 0 && len(b) < h.maxHead {
						hc.scanned = resumeAt(b)
						return needMore
					}
					status := 431
					if bytes.IndexByte(b[:min(len(b), h.maxHead)], '\n') < 0 {
						status = 414
					}
					return hc.refuse(status, isHead(b))
				}
				hc.scanned = 0
				if req, status = parseHead(b[:e]); status != 0 {
					return hc.refuse(status, isHead(b))
				}
			}
			hc.start += e
			hc.s.touch(hc.c)
			resp := h.response(req)
			hc.closing = !req.keepAlive
			hc.head = req.head
			switch req.body {
			case bodyNone:
				hc.emit(resp)
				if hc.closing {
					return closeNow
				}
				continue
			case bodyLength:
				if req.length > h.maxBody {
					return hc.refuse(413, req.head)
				}
				hc.left, hc.state = req.length, stLength
			case bodyChunked:
				hc.state = stChunked
			}
			if req.expect100 {
				hc.emit(continue100)
			}
			hc.pending = resp
		case stLength:
			k := int(min(hc.left, int64(len(b))))
			hc.start += k
			hc.s.touch(hc.c)
			if hc.left -= int64(k); hc.left == 0 {
				if hc.bodyDone() {
					return closeNow
				}
			}
		case stChunked:
			n, done, status := hc.chunk.consume(b, h.maxBody, h.maxHead)
			hc.start += n
			if n > 0 {
				hc.s.touch(hc.c)
			}
			if status != 0 {
				return hc.refuse(status, hc.head)
			}
			if done {
				if hc.bodyDone() {
					return closeNow
				}
			} else if hc.start < hc.end {
				return needMore // the rest is an incomplete line
			}
		}
	}
	return needMore
}

// bodyDone answers the request whose body was just read; it reports
// whether the connection closes now.
func (hc *httpConn) bodyDone() bool {
	hc.state = stHead
	hc.emit(hc.pending)
	hc.pending = nil
	return hc.closing
}

// refuse answers with an error status (head: to a HEAD request); the
// connection then closes.
func (hc *httpConn) refuse(status int, head bool) step {
	hc.emit(hc.h.errorResponse(status, head))
	return closeNow
}

// emit queues an answer in the current batch.
func (hc *httpConn) emit(resp []byte) {
	if hc.first == nil && len(hc.out) == 0 {
		hc.first = resp
		return
	}
	if hc.out == nil {
		hc.out = hc.h.out.get()[:0]
	}
	if hc.first != nil {
		hc.out = append(hc.out, hc.first...)
		hc.first = nil
	}
	hc.out = append(hc.out, resp...)
}

// flush sends the current batch with one Send and waits until it is
// written.
func (hc *httpConn) flush(co *ad.Coro) error {
	data := hc.first
	if data == nil {
		data = hc.out
	}
	if len(data) == 0 {
		return nil
	}
	err := co.Send(hc.c.fd, data, ad.DefaultFlags)
	hc.first = nil
	if hc.out != nil {
		hc.h.out.put(hc.out)
		hc.out = nil
	}
	hc.s.touch(hc.c)
	return err
}

// makeRoom makes sure there is room to receive: it borrows a buffer,
// moves unparsed bytes to its front, and grows it (a buffer of its own)
// if it is full; false if it is full at its largest (a limit that every
// path should have caught first).
func (hc *httpConn) makeRoom() bool {
	if hc.buf == nil {
		hc.buf = hc.h.in.get()
		hc.start, hc.end = 0, 0
	}
	if hc.start == hc.end {
		hc.start, hc.end = 0, 0
	} else if hc.start > 0 {
		copy(hc.buf, hc.buf[hc.start:hc.end])
		hc.end -= hc.start
		hc.start = 0
	}
	if hc.end < len(hc.buf) {
		return true
	}
	if len(hc.buf) >= hc.h.maxBuf {
		return false
	}
	nb := make([]byte, min(2*len(hc.buf), hc.h.maxBuf))
	copy(nb, hc.buf[:hc.end])
	hc.h.in.put(hc.buf)
	hc.buf = nb
	return true
}

// release gives the connection's buffers back to the pools.
func (hc *httpConn) release() {
	if hc.buf != nil {
		hc.h.in.put(hc.buf)
		hc.buf = nil
		hc.start, hc.end, hc.scanned = 0, 0, 0
	}
	if hc.out != nil {
		hc.h.out.put(hc.out)
		hc.out = nil
	}
}

// linger ends a connection after its last answer: shut down for
// writing (the client sees the end of the stream after the answer), then
// read and discard until the client closes, for at most lingerTime and
// lingerBytes, so that unread request bytes do not make the kernel reset
// the connection and destroy the answer before the client has read it.
func (hc *httpConn) linger(co *ad.Coro) {
	fd := hc.c.fd
	if unix.Shutdown(int(fd), unix.SHUT_WR) != nil {
		return
	}
	hc.s.lingerFor(hc.c, lingerTime)
	if hc.buf == nil {
		hc.buf = hc.h.in.get()
	}
	for total := 0; total < lingerBytes; {
		n, err := co.RecvInto(fd, hc.buf, ad.DefaultFlags)
		if err != nil || n == 0 {
			return
		}
		total += n
	}
}
