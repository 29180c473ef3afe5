package asyncdispatch

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
)

// Test seams of the reliability tests and the fuzz targets
// (internal/poll/export_test.go style). The system-call seams are
// internal/sys's, driven by internal/testkit/faults.

// Leftovers lists what d still holds: after Close it must be empty (the
// coroutines, descriptors, timers, queued callbacks, outstanding
// cross-goroutine work, close hooks and accept back-offs are all gone).
func Leftovers(d *Dispatcher) []string {
	var out []string
	add := func(what string, n int) {
		if n != 0 {
			out = append(out, fmt.Sprintf("%d %s", n, what))
		}
	}
	add("live coroutines", len(d.coros))
	add("pooled coroutines", len(d.idle))
	add("registered descriptors", d.nfds)
	add("active descriptors", d.nactive)
	n := 0
	for _, s := range d.fds {
		if s != nil {
			n++
		}
	}
	add("fd table slots", n)
	add("timers", d.timers.Len())
	add("queued callbacks", d.ready.len())
	add("remote callbacks", remoteLen(d))
	add("external references", d.extRefs)
	add("close hooks", len(d.atClose))
	add("accept back-offs", len(d.sock.backoff))
	if d.polling || d.current != nil {
		out = append(out, "still inside the loop")
	}
	if d.closed && !isClosedChan(d.done) {
		out = append(out, "Done not closed")
	}
	return out
}

// PendingErrors is the number of callback panics and AsyncCheck failures
// d has not returned from a Poll yet.
func PendingErrors(d *Dispatcher) int { return len(d.checkErr) }

// ListenAddr is what Listen makes of its arguments (parseListenAddr), in
// a form tests can compare.
type ListenAddr struct {
	Domain, SockType, Proto int
	// Addr is the address of an inet socket, Path that of a Unix one.
	Addr   netip.AddrPort
	Path   string
	Listen bool
	V6Only bool
}

// ParseListenAddr is Listen's address parsing.
func ParseListenAddr(network, address string) (ListenAddr, error) {
	la, err := parseListenAddr(network, address)
	if err != nil {
		return ListenAddr{}, err
	}
	r := ListenAddr{Domain: la.domain, SockType: la.sockType, Proto: la.proto, Listen: la.listen, V6Only: la.v6only}
	switch sa := la.sa.(type) {
	case *unix.SockaddrInet4:
		r.Addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			ip = ip.WithZone(fmt.Sprint(sa.ZoneId))
		}
		r.Addr = netip.AddrPortFrom(ip, uint16(sa.Port))
	case *unix.SockaddrUnix:
		r.Path = sa.Name
	default:
		return ListenAddr{}, fmt.Errorf("parseListenAddr made a %T", la.sa)
	}
	return r, nil
}

// FakeClock is a loop clock for tests of loop and timer logic without
// wall-clock windows: it stands still until the loop waits for I/O, and a
// wait that finds nothing ready moves it on by the time the loop asked to
// wait (capped at poller.MaxWait, as the real poller caps one wait)
// instead of sleeping. An unbounded wait (nothing to jump to) really
// waits, for an event or a wake.
type FakeClock struct {
	ns atomic.Int64
	// Waits counts the waits that moved the clock on.
	Waits int
}

// UseFakeClock gives d a fake clock that reads 0 now. Call it before d
// makes any timer and before anything else uses d.
func UseFakeClock(d *Dispatcher) *FakeClock {
	c := &FakeClock{}
	d.clock = c.ns.Load
	d.poller = &fakeClockPoller{Poller: d.poller, c: c}
	return c
}

// Now is the time on the clock since UseFakeClock.
func (c *FakeClock) Now() time.Duration { return time.Duration(c.ns.Load()) }

// Advance moves the clock on by dur, as if that much time had passed
// outside the loop.
func (c *FakeClock) Advance(dur time.Duration) { c.ns.Add(int64(dur)) }

type fakeClockPoller struct {
	poller.Poller
	c *FakeClock
}

func (p *fakeClockPoller) Wait(events []poller.Event, timeout time.Duration) (int, error) {
	if timeout < 0 {
		return p.Poller.Wait(events, timeout)
	}
	n, err := p.Poller.Wait(events, 0)
	if n > 0 || err != nil || timeout == 0 {
		return n, err
	}
	p.c.Waits++
	p.c.Advance(min(timeout, poller.MaxWait))
	return 0, nil
}

// OwnerCheckOn is what a value of ASYNCDISPATCH_CHECK means for the
// owner check.
func OwnerCheckOn(v string) bool { return ownerCheckOn(v) }

// OwnerCheckEnv is the name of that variable.
const OwnerCheckEnv = ownerCheckEnv

// remoteLen is the number of posts waiting in d's remote queue.
func remoteLen(d *Dispatcher) int {
	n := 0
	if h := d.remote.head.Load(); h != remoteClosed {
		for ; h != nil; h = h.next {
			n++
		}
	}
	return n
}
