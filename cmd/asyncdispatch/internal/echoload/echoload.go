// Package echoload drives an echo server with many connections from one
// Dispatcher and measures it: messages per second and a latency
// histogram. It is the engine of `asyncdispatch demo` and `asyncdispatch
// bench echo`.
//
// Each connection is an async procedure that keeps Pipeline messages of
// Size bytes in flight: it sends them, and for every message whose echo
// has fully arrived it records the round trip and sends the next one.
// What must stay true:
//   - every echoed byte is checked: connection i sends the byte stream
//     pattern[base_i:], a pseudo-random sequence with a prime period, so a
//     lost, duplicated, reordered or crossed-over byte shows as a mismatch;
//   - a connection has at most one Send outstanding, and its data is a
//     slice of the read-only pattern, so nothing has to be copied or kept
//     alive per message; messages that become due while the Send is still
//     being written go out with the next one (their clock starts then);
//   - only messages completed inside the measured window count; at the end
//     no new messages are sent and the ones in flight are awaited (for at
//     most DrainTimeout), so every connection closes cleanly and its bytes
//     are checked to the last.
package echoload

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/cmd/asyncdispatch/internal/hist"
)

// Config is one load run.
type Config struct {
	// Addr is the echo server, "host:port" with an IP literal.
	Addr string
	// Conns connections, each with Pipeline messages of Size bytes in
	// flight.
	Conns, Pipeline, Size int
	// Warmup runs before the measured Duration.
	Warmup, Duration time.Duration
	// Progress, if set, is called every Interval (0: 1 s) while the load
	// runs.
	Progress func(Progress)
	Interval time.Duration
	// Stop, if set, ends the run early when it finishes (Ctrl-C).
	Stop *ad.Future[ad.Void]
	// DrainTimeout bounds the wait for the echoes in flight at the end
	// (0: 2 s); connections still waiting then are cut.
	DrainTimeout time.Duration
	// DialTimeout bounds each connection attempt (0: 10 s).
	DialTimeout time.Duration
}

// Limits of a Config.
const (
	MaxSize     = 1 << 20
	MaxPipeline = 4096
	MaxInFlight = 16 << 20 // Pipeline × Size
)

// Check reports what is wrong with c, if anything.
func (c *Config) Check() error {
	switch {
	case c.Conns < 1:
		return errors.New("connections must be at least 1")
	case c.Pipeline < 1 || c.Pipeline > MaxPipeline:
		return fmt.Errorf("pipeline must be between 1 and %d", MaxPipeline)
	case c.Size < 1 || c.Size > MaxSize:
		return fmt.Errorf("size must be between 1 and %d bytes", MaxSize)
	case c.Pipeline*c.Size > MaxInFlight:
		return fmt.Errorf("pipeline × size must be at most %d bytes", MaxInFlight)
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Warmup < 0:
		return errors.New("warm-up must not be negative")
	}
	if _, err := netip.ParseAddrPort(c.Addr); err != nil {
		return fmt.Errorf("address %q: want an IP address and a port", c.Addr)
	}
	return nil
}

// Progress is a snapshot taken every Interval.
type Progress struct {
	Elapsed time.Duration // since the load started
	Warmup  bool          // still warming up (nothing measured yet)
	Conns   int           // connections open
	// Messages measured so far; Rate is the rate over the last interval
	// (warm-up included), Avg over the measured window so far.
	Messages  uint64
	Rate, Avg float64
	// Latency quantiles of the measured messages so far.
	P50, P99 time.Duration
}

// Result is the outcome of a run.
type Result struct {
	Conns int // connections established
	// Messages echoed inside the measured window, which lasted Elapsed.
	Messages uint64
	Elapsed  time.Duration
	// Latency of those messages, from the Send to the last echoed byte.
	Latency hist.Hist
	// BytesChecked counts every echoed byte compared with what was sent
	// (warm-up and drain included).
	BytesChecked uint64
	// Mismatches counts connections whose echo differed from what they
	// sent; Errors the connections that failed otherwise (could not
	// connect, were closed or reset by the server, or did not drain in
	// time). FirstError is the first such error.
	Mismatches, Errors int
	FirstError         error
	// Stopped: Stop ended the run early.
	Stopped bool
}

// Rate is Messages per second of the measured window.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// OK reports whether every echo was right and every connection lasted.
func (r *Result) OK() bool { return r.Mismatches == 0 && r.Errors == 0 }

// The payload: patternLen is a prime, so the pattern's period lines up
// with no message size.
const patternLen = 65521

// pattern returns the payload source: patternLen pseudo-random bytes,
// repeated for extra more, so any slice of up to extra bytes starting
// below patternLen is contiguous.
func pattern(extra int) []byte {
	p := make([]byte, patternLen+extra)
	x := uint32(2463534242)
	for i := range patternLen {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	for i := patternLen; i < len(p); i++ {
		p[i] = p[i-patternLen]
	}
	return p
}

// run is the state of one load run, shared by its connections (all on
// the dispatcher's goroutine).
type run struct {
	d       *ad.Dispatcher
	cfg     Config
	pattern []byte
	bufSize int
	epoch   time.Time
	// measuring: inside the measured window; stopping: the window is
	// over, connections drain and close.
	measuring, stopping bool
	res                 Result
	// total counts every completed message (warm-up included), for the
	// progress rate; open the connections still open.
	total, lastTotal uint64
	open             int
	measureStart     time.Duration
}

func (r *run) now() time.Duration { return time.Since(r.epoch) }

func (r *run) fail(err error) {
	r.res.Errors++
	if r.res.FirstError == nil {
		r.res.FirstError = err
	}
}

// Run is the async procedure of a load run: it connects, runs the load,
// drains and closes every connection. It fails only if the configuration
// is wrong or no connection could be made.
func Run(co *ad.Coro, d *ad.Dispatcher, cfg Config) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	ap := netip.MustParseAddrPort(cfg.Addr)
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 2 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	r := &run{d: d, cfg: cfg}
	r.bufSize = min(max(cfg.Pipeline*cfg.Size, 4096), 64<<10)
	r.pattern = pattern(max(cfg.Pipeline*cfg.Size, r.bufSize))

	// Connect every connection at once, then collect them in order.
	dials := make([]*ad.Future[ad.AsyncFD], cfg.Conns)
	for i := range dials {
		dials[i] = ad.Timeout(d.Dial(ap.Addr().String(), int(ap.Port()), unix.IPPROTO_TCP), cfg.DialTimeout)
	}
	var clients []*client
	for i, f := range dials {
		if cfg.Stop != nil && cfg.Stop.Finished() {
			f.Cancel() // interrupted while connecting: stop the rest
		}
		fd, err := ad.Await(co, f)
		if err != nil {
			if errors.Is(err, ad.ErrClosed) {
				return nil, err
			}
			if errors.Is(err, ad.ErrCancelled) {
				continue
			}
			var ce *ad.ConnectError
			if !errors.As(err, &ce) {
				err = fmt.Errorf("connect %s: %w", cfg.Addr, err)
			}
			r.fail(err)
			continue
		}
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		base := (i * 7919) % patternLen
		clients = append(clients, &client{r: r, fd: fd, base: base,
			buf: make([]byte, r.bufSize), times: make([]time.Duration, cfg.Pipeline)})
	}
	r.res.Conns = len(clients)
	if len(clients) == 0 {
		if r.res.FirstError == nil {
			r.res.Stopped = true
			return &r.res, nil
		}
		return &r.res, r.res.FirstError
	}

	r.epoch = time.Now()
	r.open = len(clients)
	futs := make([]*ad.Future[ad.Void], len(clients))
	for i, c := range clients {
		futs[i] = ad.Async(d, c.run)
	}
	ticker, err := d.AddTimer(cfg.Interval, false, r.progress)
	if err != nil {
		return nil, err
	}
	defer ticker.Stop()

	// Warm up, then measure, unless Stop comes first.
	stopped := false
	if cfg.Warmup > 0 {
		if stopped, err = r.sleep(co, cfg.Warmup); err != nil {
			return nil, err
		}
	}
	if !stopped {
		r.startMeasuring()
		if stopped, err = r.sleep(co, cfg.Duration); err != nil {
			return nil, err
		}
	}
	r.res.Stopped = stopped
	if r.measuring {
		r.res.Elapsed = r.now() - r.measureStart
	}
	r.measuring, r.stopping = false, true

	// Drain: every connection stops sending, awaits its echoes, closes.
	all := ad.All(futs...)
	ok, err := ad.Await(co, ad.WithTimeout(all, cfg.DrainTimeout))
	if err != nil {
		return nil, err
	}
	if !ok {
		for _, c := range clients {
			if !c.done {
				noun := "messages"
				if c.inflight == 1 {
					noun = "message"
				}
				r.fail(fmt.Errorf("%d %s still in flight after %v", c.inflight, noun, cfg.DrainTimeout))
			}
		}
		// Cancel the stragglers (their pending receive returns
		// ErrCancelled) and wait for them to close their sockets.
		all.Cancel()
		for _, f := range futs {
			ad.Await(co, f)
		}
	}
	return &r.res, nil
}

// sleep waits for dur or until Stop finishes; stopped reports the latter.
func (r *run) sleep(co *ad.Coro, dur time.Duration) (stopped bool, err error) {
	sl := r.d.SleepAsync(dur)
	if r.cfg.Stop == nil {
		_, err = ad.Await(co, sl)
		return false, err
	}
	_, err = ad.Await(co, ad.Or(sl, r.cfg.Stop))
	stopped = !sl.Finished()
	sl.Cancel()
	return stopped, err
}

func (r *run) startMeasuring() {
	r.measuring = true
	r.measureStart = r.now()
	r.res.Messages = 0
	r.res.Latency.Reset()
}

// progress is the ticker: one snapshot per interval.
func (r *run) progress(ad.AsyncFD) bool {
	if r.cfg.Progress == nil || r.stopping {
		return false
	}
	p := Progress{
		Elapsed:  r.now(),
		Warmup:   !r.measuring,
		Conns:    r.open,
		Messages: r.res.Messages,
		Rate:     float64(r.total-r.lastTotal) / r.cfg.Interval.Seconds(),
		P50:      r.res.Latency.Quantile(0.5),
		P99:      r.res.Latency.Quantile(0.99),
	}
	if r.measuring {
		if el := r.now() - r.measureStart; el > 0 {
			p.Avg = float64(r.res.Messages) / el.Seconds()
		}
	}
	r.lastTotal = r.total
	r.cfg.Progress(p)
	return false
}

// client is one connection.
type client struct {
	r    *run
	fd   ad.AsyncFD
	base int // where this connection's stream starts in the pattern
	buf  []byte
	// sent and recvd count the stream's bytes; inflight messages are
	// sent and not fully echoed, owed ones are due but wait for send.
	sent, recvd      uint64
	inflight, owed   int
	send             *ad.Future[ad.Void]
	times            []time.Duration // send times of the messages in flight, a ring
	head             int
	done, mismatched bool
}

// run is the connection's async procedure.
func (c *client) run(co *ad.Coro) (ad.Void, error) {
	r := c.r
	defer func() {
		if c.send != nil && !c.send.Finished() {
			c.send.Cancel()
		} else if err := c.sendErr(); err != nil && !c.mismatched {
			r.fail(err)
		}
		r.d.CloseSocket(c.fd)
		r.open--
		c.done = true
	}()
	size := r.cfg.Size
	c.queue(r.cfg.Pipeline)
	for !r.stopping || c.inflight > 0 {
		// A receive that finishes at once lets Await return without a
		// switch; the dispatcher's I/O budget still gives the other
		// connections and the timers a turn.
		f := r.d.RecvInto(c.fd, c.buf, ad.DefaultFlags)
		n, err := ad.Await(co, f)
		if err != nil {
			if !errors.Is(err, ad.ErrCancelled) && !errors.Is(err, ad.ErrClosed) {
				r.fail(err)
			}
			return ad.Void{}, nil
		}
		if n == 0 {
			r.fail(errors.New("the server closed a connection with messages in flight"))
			return ad.Void{}, nil
		}
		if !c.check(c.buf[:n]) {
			return ad.Void{}, nil
		}
		before := c.recvd / uint64(size)
		c.recvd += uint64(n)
		k := int(c.recvd/uint64(size) - before)
		if k > 0 {
			now := r.now()
			for range k {
				t := c.times[c.head]
				c.head = (c.head + 1) % len(c.times)
				if r.measuring {
					r.res.Latency.Add(now - t)
					r.res.Messages++
				}
			}
			c.inflight -= k
			r.total += uint64(k)
			if !r.stopping {
				c.queue(k)
			}
		}
		if c.sendErr() != nil {
			return ad.Void{}, nil // reported on the way out
		}
	}
	return ad.Void{}, nil
}

// check compares received bytes with what was sent at their offset.
func (c *client) check(b []byte) bool {
	o := (uint64(c.base) + c.recvd) % patternLen
	want := c.r.pattern[o : o+uint64(len(b))]
	if string(b) != string(want) {
		c.mismatched = true
		c.r.res.Mismatches++
		if c.r.res.FirstError == nil {
			c.r.res.FirstError = fmt.Errorf("echo mismatch at byte %d of a connection", c.recvd+firstDiff(b, want))
		}
		return false
	}
	c.r.res.BytesChecked += uint64(len(b))
	return true
}

func firstDiff(a, b []byte) uint64 {
	for i := range a {
		if a[i] != b[i] {
			return uint64(i)
		}
	}
	return uint64(len(a))
}

// queue makes k more messages due and sends every due message unless a
// Send is still being written.
func (c *client) queue(k int) {
	c.owed += k
	if c.send != nil && !c.send.Finished() {
		return
	}
	if c.sendErr() != nil {
		return
	}
	size := c.r.cfg.Size
	o := (uint64(c.base) + c.sent) % patternLen
	n := uint64(c.owed * size)
	now := c.r.now()
	for i := range c.owed {
		c.times[(c.head+c.inflight+i)%len(c.times)] = now
	}
	c.send = c.r.d.Send(c.fd, c.r.pattern[o:o+n], ad.DefaultFlags)
	c.sent += n
	c.inflight += c.owed
	c.owed = 0
}

// sendErr is the error of the last Send, once it has finished.
func (c *client) sendErr() error {
	if c.send == nil || !c.send.Finished() {
		return nil
	}
	return c.send.Err()
}

// CheckLoopback returns an error unless addr ("host:port") names a
// loopback address: an IP literal in 127.0.0.0/8 or ::1, or "localhost"
// (which becomes 127.0.0.1). It returns the address with the IP literal.
func CheckLoopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("bad port in %q", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return "", fmt.Errorf("refusing %q: load goes only to a loopback address (127.0.0.0/8, ::1 or localhost)", addr)
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}
