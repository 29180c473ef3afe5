package asyncdispatch_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Fuzz targets of the root package (seed corpora in testdata/fuzz;
// .ci/fuzz runs each for a few seconds, README "Long runs" says how to
// run them longer). The timer queue's is internal/timerheap's FuzzHeap;
// the socket addresses' are internal/sockaddr's.

// fuzzD makes a dispatcher for one fuzz input and checks, when the input
// is done, that closing it leaves nothing.
func fuzzD(t *testing.T) *ad.Dispatcher {
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if left := ad.Leftovers(d); len(left) > 0 {
			t.Fatalf("after Close: %v", left)
		}
	})
	return d
}

// FutureStream operation sequences against a model written from the
// documentation of future_stream.go: writes go to the oldest pending reader, else
// to the buffer while it has room, else they block (bounded streams);
// reads take from the buffer (a blocked write then moves in), else
// straight from the oldest blocked write (bound 0), else wait; Complete
// and Fail end the stream after what was written; cancelling a pending
// read or write withdraws it. The first byte picks the bound (-1 is
// unbounded), then every two bytes are one operation.
func FuzzFutureStream(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 1, 0, 1, 0, 2, 0, 1, 0})
	f.Add([]byte{1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 2, 0, 1, 0, 1, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 1, 0, 3, 0, 1, 0, 1, 0, 1, 0})
	f.Add([]byte{3, 1, 0, 1, 0, 4, 0, 0, 0, 3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if len(data) > 257 {
			data = data[:257]
		}
		d := fuzzD(t)
		bound := int(data[0]%6) - 1
		var fs *ad.FutureStream[int]
		if bound < 0 {
			fs = ad.NewFutureStream[int](d, "fuzz")
		} else {
			fs = ad.NewBoundedFutureStream[int](d, "fuzz", bound)
		}
		failErr := errors.New("stream failed")
		m := &streamModel{bound: bound}
		next := 0
		for ops := data[1:]; len(ops) >= 2; ops = ops[2:] {
			op, arg := ops[0]%6, int(ops[1])
			switch op {
			case 0:
				next++
				w := fs.Write(next)
				m.write(next, w)
			case 1:
				m.read(fs.Read())
			case 2:
				fs.Complete()
				m.close(nil)
			case 3:
				fs.Fail(failErr)
				m.close(failErr)
			case 4:
				if len(m.readers) > 0 {
					r := m.readers[arg%len(m.readers)]
					if !r.Cancel() {
						t.Fatal("Cancel of a pending read said false")
					}
					m.cancelRead(r)
				}
			case 5:
				if len(m.blocked) > 0 {
					w := m.blocked[arg%len(m.blocked)]
					if !w.fut.Cancel() {
						t.Fatal("Cancel of a blocked write said false")
					}
					m.cancelWrite(w.fut)
				}
			}
			m.check(t, fs)
		}
	})
}

type streamWrite struct {
	v   int
	fut *ad.Future[ad.Void]
}

// streamModel tracks what every future the stream returned must be.
type streamModel struct {
	bound   int
	buf     []int
	blocked []streamWrite
	readers []*ad.Future[ad.ReadResult[int]]
	closed  bool
	err     error
	// want is the outcome each finished future must have: a value for a
	// read, nil for a completed write, or an error.
	reads  map[*ad.Future[ad.ReadResult[int]]]any
	writes map[*ad.Future[ad.Void]]error
}

func (m *streamModel) init() {
	if m.reads == nil {
		m.reads = map[*ad.Future[ad.ReadResult[int]]]any{}
		m.writes = map[*ad.Future[ad.Void]]error{}
	}
}

func (m *streamModel) write(v int, f *ad.Future[ad.Void]) {
	m.init()
	switch {
	case m.closed:
		m.writes[f] = ad.ErrStreamFinished
	case len(m.readers) > 0:
		r := m.readers[0]
		m.readers = m.readers[1:]
		m.reads[r] = ad.ReadResult[int]{Value: v, OK: true}
		m.writes[f] = nil
	case m.bound < 0 || len(m.buf) < m.bound:
		m.buf = append(m.buf, v)
		m.writes[f] = nil
	default:
		m.blocked = append(m.blocked, streamWrite{v, f})
	}
}

func (m *streamModel) read(f *ad.Future[ad.ReadResult[int]]) {
	m.init()
	switch {
	case len(m.buf) > 0:
		m.reads[f] = ad.ReadResult[int]{Value: m.buf[0], OK: true}
		m.buf = m.buf[1:]
		if len(m.blocked) > 0 {
			w := m.blocked[0]
			m.blocked = m.blocked[1:]
			m.buf = append(m.buf, w.v)
			m.writes[w.fut] = nil
		}
	case len(m.blocked) > 0:
		w := m.blocked[0]
		m.blocked = m.blocked[1:]
		m.reads[f] = ad.ReadResult[int]{Value: w.v, OK: true}
		m.writes[w.fut] = nil
	case m.closed && m.err != nil:
		m.reads[f] = m.err
	case m.closed:
		m.reads[f] = ad.ReadResult[int]{}
	default:
		m.readers = append(m.readers, f)
	}
}

func (m *streamModel) close(err error) {
	m.init()
	if m.closed {
		return
	}
	m.closed, m.err = true, err
	for _, r := range m.readers {
		if err != nil {
			m.reads[r] = err
		} else {
			m.reads[r] = ad.ReadResult[int]{}
		}
	}
	m.readers = nil
}

func (m *streamModel) cancelRead(f *ad.Future[ad.ReadResult[int]]) {
	for i, r := range m.readers {
		if r == f {
			m.readers = append(m.readers[:i:i], m.readers[i+1:]...)
		}
	}
	m.reads[f] = ad.ErrCancelled
}

func (m *streamModel) cancelWrite(f *ad.Future[ad.Void]) {
	for i, w := range m.blocked {
		if w.fut == f {
			m.blocked = append(m.blocked[:i:i], m.blocked[i+1:]...)
		}
	}
	m.writes[f] = ad.ErrCancelled
}

func (m *streamModel) check(t *testing.T, fs *ad.FutureStream[int]) {
	t.Helper()
	if fs.Len() != len(m.buf)+len(m.blocked) {
		t.Fatalf("Len %d, model %d buffered + %d blocked", fs.Len(), len(m.buf), len(m.blocked))
	}
	if fin := m.closed && len(m.buf) == 0 && len(m.blocked) == 0; fs.Finished() != fin {
		t.Fatalf("Finished %v, model %v", fs.Finished(), fin)
	}
	if fs.Failed() != (m.err != nil) {
		t.Fatalf("Failed %v, model %v", fs.Failed(), m.err != nil)
	}
	if len(m.readers) > 0 && len(m.buf)+len(m.blocked) > 0 {
		t.Fatal("model broken: readers wait while values wait")
	}
	for f, want := range m.reads {
		v, err := f.Read()
		switch w := want.(type) {
		case error:
			if !errors.Is(err, w) {
				t.Fatalf("read: %v, %v; want error %v", v, err, w)
			}
		case ad.ReadResult[int]:
			if err != nil || v != w {
				t.Fatalf("read: %v, %v; want %v", v, err, w)
			}
		}
	}
	for _, f := range m.readers {
		if f.Finished() {
			t.Fatalf("pending read finished: %v", f)
		}
	}
	for f, want := range m.writes {
		if !f.Finished() || !errors.Is(f.Err(), want) || (want == nil && f.Err() != nil) {
			t.Fatalf("write: finished %v, %v; want %v", f.Finished(), f.Err(), want)
		}
	}
	for _, w := range m.blocked {
		if w.fut.Finished() {
			t.Fatalf("blocked write of %d finished: %v", w.v, w.fut)
		}
	}
}

// The fd callback protocol (AddRead/AddWrite, Nim's addRead/addWrite)
// against a model written from loop_fd.go's documentation: callbacks of one
// descriptor run in the order they were added; within one readiness event
// they run until one returns false, which keeps it and every later one;
// callbacks added meanwhile come after them and wait for the next event;
// a callback that unregisters its own descriptor ends the list. Two pipes;
// their read ends are readable while they hold data, their write ends
// always writable. Every two bytes are one operation.
func FuzzFDCallbacks(f *testing.F) {
	f.Add([]byte{0, 0x55, 2, 0, 6, 0, 6, 0, 3, 0, 6, 0})
	f.Add([]byte{1, 0xf0, 1, 0x0f, 6, 0, 6, 0, 6, 0, 6, 0})
	f.Add([]byte{0, 0xc0, 0, 0x81, 2, 0, 6, 0, 6, 0, 4, 0, 5, 0, 0, 1, 6, 0})
	f.Add([]byte{0, 0x40, 2, 1, 6, 0, 6, 0, 6, 0, 6, 0, 3, 0, 6, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 128 {
			data = data[:128]
		}
		d := fuzzD(t)
		var p [2][2]int
		for i := range p {
			if err := unix.Pipe2(p[i][:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[i][0])
			defer unix.Close(p[i][1])
		}
		// fds: 0, 1 the read ends, 2, 3 the write ends.
		fds := [4]ad.AsyncFD{ad.AsyncFD(p[0][0]), ad.AsyncFD(p[1][0]), ad.AsyncFD(p[0][1]), ad.AsyncFD(p[1][1])}
		m := &fdModel{}
		for i, fd := range fds {
			if err := d.Register(fd); err != nil {
				t.Fatal(err)
			}
			m.fds[i].registered = true
		}
		logs := [4][]int{}
		ids := 0
		// add adds a callback with the given id; one added by a callback
		// is numbered minus its parent's id (so both sides agree whatever
		// order the kernel reports the descriptors in).
		var add func(i, id int, pattern, action byte) error
		add = func(i, id int, pattern, action byte) error {
			cb := &fdCB{id: id, pattern: pattern, action: action}
			real := func(ad.AsyncFD) bool {
				logs[i] = append(logs[i], cb.id)
				done := cb.result()
				switch {
				case cb.calls == 1 && cb.action&0xc0 == 0x40:
					add(i, -cb.id, cb.pattern^0xff, 0)
				case cb.calls == 1 && cb.action&0xc0 == 0x80:
					d.Unregister(fds[i])
				}
				return done
			}
			var err error
			if i < 2 {
				err = d.AddRead(fds[i], real)
			} else {
				err = d.AddWrite(fds[i], real)
			}
			if err == nil && id > 0 { // the model adds children itself
				m.fds[i].list = append(m.fds[i].list, &fdCB{id: cb.id, pattern: pattern, action: action})
			}
			return err
		}
		for ops := data; len(ops) >= 2; ops = ops[2:] {
			op, arg := ops[0]%8, ops[1]
			i := int(arg & 3)
			switch op {
			case 0, 1: // add a callback (reads on 0, 1; writes on 2, 3)
				ids++
				err := add(i, ids, arg, ops[0])
				if reg := m.fds[i].registered; (err == nil) != reg || (!reg && !errors.Is(err, ad.ErrNotRegistered)) {
					t.Fatalf("add to fd %d (registered %v): %v", i, reg, err)
				}
			case 2: // write to pipe i%2
				if _, err := unix.Write(p[i%2][1], []byte{arg}); err != nil {
					t.Fatal(err)
				}
				m.data[i%2]++
			case 3: // drain pipe i%2
				var buf [256]byte
				for {
					if n, _ := unix.Read(p[i%2][0], buf[:]); n <= 0 {
						break
					}
				}
				m.data[i%2] = 0
			case 4: // unregister
				err := d.Unregister(fds[i])
				if reg := m.fds[i].registered; (err == nil) != reg {
					t.Fatalf("Unregister fd %d (registered %v): %v", i, reg, err)
				}
				m.fds[i] = fdModelFD{}
			case 5: // register
				err := d.Register(fds[i])
				if reg := m.fds[i].registered; (err == nil) == reg || (reg && !errors.Is(err, ad.ErrAlreadyRegistered)) {
					t.Fatalf("Register fd %d (registered %v): %v", i, reg, err)
				}
				m.fds[i].registered = true
			default: // one round of the loop
				err := d.Poll(0)
				want := m.poll()
				if (err == nil) != (want != nil) || (err != nil && !errors.Is(err, ad.ErrNoWork)) {
					t.Fatalf("Poll: %v; model ran %v", err, want)
				}
				if want == nil {
					want = &[4][]int{}
				}
				for k := range logs {
					if fmt.Sprint(logs[k]) != fmt.Sprint(want[k]) {
						t.Fatalf("fd %d: callbacks called %v, model %v", k, logs[k], want[k])
					}
				}
				logs = [4][]int{}
			}
			active, registered := m.counts()
			if d.ActiveDescriptors() != active || d.RegisteredDescriptors() != registered || d.HasPendingOperations() != (active > 0) {
				t.Fatalf("active %d registered %d pending %v; model %d %d",
					d.ActiveDescriptors(), d.RegisteredDescriptors(), d.HasPendingOperations(), active, registered)
			}
		}
		for _, fd := range fds {
			d.Unregister(fd)
		}
	})
}

// fdCB is one callback: its n-th call returns bit n%8 of pattern (1 is
// done); on its first call, action 0x40 adds a callback to the same
// descriptor (numbered -id) and 0x80 unregisters it.
type fdCB struct {
	id              int
	pattern, action byte
	calls           int
}

func (c *fdCB) result() bool {
	r := c.pattern>>(c.calls%8)&1 == 1
	c.calls++
	return r
}

type fdModelFD struct {
	registered bool
	list       []*fdCB
}

type fdModel struct {
	fds  [4]fdModelFD
	data [2]int
}

func (m *fdModel) counts() (active, registered int) {
	for _, s := range m.fds {
		if s.registered {
			registered++
		}
		if len(s.list) > 0 {
			active++
		}
	}
	return
}

// poll runs one round: every ready descriptor's list. It returns the
// callbacks called per descriptor, or nil if nothing was pending (Poll
// says ErrNoWork).
func (m *fdModel) poll() *[4][]int {
	if active, _ := m.counts(); active == 0 {
		return nil
	}
	var calls [4][]int
	for i := range m.fds {
		s := &m.fds[i]
		if !s.registered || len(s.list) == 0 || (i < 2 && m.data[i] == 0) {
			continue
		}
		cur := s.list
		s.list = nil
		var added []*fdCB
		k := 0
		for k < len(cur) {
			cb := cur[k]
			calls[i] = append(calls[i], cb.id)
			done := cb.result()
			if cb.calls == 1 && cb.action&0xc0 == 0x40 {
				added = append(added, &fdCB{id: -cb.id, pattern: cb.pattern ^ 0xff})
			}
			if cb.calls == 1 && cb.action&0xc0 == 0x80 {
				*s = fdModelFD{}
				cur, added = nil, nil
				break
			}
			if !done {
				break
			}
			k++
		}
		if s.registered {
			s.list = append(append([]*fdCB(nil), cur[k:]...), added...)
		}
	}
	return &calls
}

// Listen's address parsing: whatever the input, no panic; an error is
// ErrNoAddress (and a *net.AddrError) or an unknown network; a success
// describes exactly the address given.
func FuzzListenAddr(f *testing.F) {
	for _, s := range [][2]string{
		{"tcp", "127.0.0.1:80"}, {"tcp", ":0"}, {"tcp4", ":8080"}, {"tcp6", "[::1]:0"},
		{"udp", "[::ffff:10.0.0.1]:53"}, {"udp6", "[fe80::1%1]:9"}, {"tcp", "localhost:80"},
		{"tcp", "1.2.3.4:65536"}, {"tcp4", "[::1]:1"}, {"unix", "/tmp/sock"}, {"unixgram", "@abstract"},
		{"unix", ""}, {"ip", "1.2.3.4:0"}, {"tcp", "1.2.3.4"}, {"tcp", "[::1]:+80"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, network, address string) {
		la, err := ad.ParseListenAddr(network, address)
		known := map[string]bool{"tcp": true, "tcp4": true, "tcp6": true, "udp": true, "udp4": true, "udp6": true, "unix": true, "unixgram": true}
		if err != nil {
			var ae *net.AddrError
			var ue net.UnknownNetworkError
			switch {
			case !known[network]:
				if !errors.As(err, &ue) {
					t.Fatalf("unknown network %q: %v", network, err)
				}
			case !errors.Is(err, ad.ErrNoAddress) || !errors.As(err, &ae):
				t.Fatalf("%q %q: error %v is not ErrNoAddress and a *net.AddrError", network, address, err)
			}
			return
		}
		if !known[network] {
			t.Fatalf("unknown network %q accepted", network)
		}
		if strings.HasPrefix(network, "unix") {
			if la.Domain != unix.AF_UNIX || la.Path != address || address == "" || len(address) >= 108 || la.Listen != (network == "unix") ||
				(address[0] != '@' && strings.IndexByte(address, 0) >= 0) {
				t.Fatalf("%q %q: %+v", network, address, la)
			}
			return
		}
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			t.Fatalf("%q accepted, but SplitHostPort says %v", address, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n != int(la.Addr.Port()) {
			t.Fatalf("%q: port %d", address, la.Addr.Port())
		}
		ip := la.Addr.Addr()
		last := network[len(network)-1]
		switch {
		case host == "" && last == '4':
			if ip != netip.IPv4Unspecified() {
				t.Fatalf("%q %q: %v", network, address, ip)
			}
		case host == "":
			if ip != netip.IPv6Unspecified() || la.V6Only != (last == '6') {
				t.Fatalf("%q %q: %v v6only %v", network, address, ip, la.V6Only)
			}
		case strings.EqualFold(strings.TrimSuffix(host, "."), "localhost"):
			want := netip.MustParseAddr("127.0.0.1")
			if last == '6' {
				want = netip.IPv6Loopback()
			}
			if ip != want {
				t.Fatalf("%q %q: %v", network, address, ip)
			}
		default:
			want, err := netip.ParseAddr(host)
			if err != nil {
				t.Fatalf("%q accepted, but ParseAddr says %v", host, err)
			}
			if want.Unmap().WithZone("") != ip.WithZone("") {
				t.Fatalf("%q: %v", host, ip)
			}
			if (last == '4' && !ip.Is4()) || (last == '6' && ip.Is4()) {
				t.Fatalf("%q %q: family of %v", network, address, ip)
			}
		}
		if (la.Domain == unix.AF_INET) != ip.Is4() {
			t.Fatalf("%q: domain %d for %v", address, la.Domain, ip)
		}
		stream := network[0] == 't'
		if la.Listen != stream || (la.SockType == unix.SOCK_STREAM) != stream || (la.Proto == unix.IPPROTO_TCP) != stream {
			t.Fatalf("%q: %+v", network, la)
		}
	})
}
