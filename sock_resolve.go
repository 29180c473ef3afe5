package asyncdispatch

import (
	"context"
	"net"
	"net/netip"
)

// Name resolution never blocks the loop (Nim's getAddrInfo does: connect
// and dial stall every other connection while the resolver waits). An IP
// literal is parsed on the spot; a name is looked up on a goroutine of its
// own, whose result comes back through CallSoonThreadSafe. While it is out
// the lookup counts as pending work (extRefs), so WaitFor and RunForever
// do not stop with ErrNoWork; Close cancels it (atClose) and the waiting
// operation fails with ErrClosed; stop cancels it and drops the result.

// resolution is one lookup on its goroutine.
type resolution struct {
	d      *Dispatcher
	cancel context.CancelFunc
	// cb receives the result on the loop, exactly once, unless stop was
	// called first.
	cb func([]netip.Addr, error)
	// released: extRefs and the atClose entry were given back.
	released bool
}

// resolve calls cb with the addresses of host, in the resolver's order.
// For an IP literal it calls cb at once and returns nil; otherwise cb runs
// later on the loop, and the returned resolution can be stopped.
func (d *Dispatcher) resolve(host string, cb func([]netip.Addr, error)) *resolution {
	if ip, err := netip.ParseAddr(host); err == nil {
		cb([]netip.Addr{ip}, nil)
		return nil
	}
	if d.closed {
		cb(nil, ErrClosed)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &resolution{d: d, cancel: cancel, cb: cb}
	d.extRefs++
	if d.atClose == nil {
		d.atClose = make(map[any]closeHook)
	}
	d.atClose[r] = r
	lookup := d.sock.lookup
	go func() {
		addrs, err := lookupHost(ctx, lookup, host)
		// ErrClosed: dispatcherClosed has answered already.
		d.callSoonThreadSafe(func() {
			if r.release() {
				r.cb(addrs, err)
			}
		})
	}()
	return r
}

// lookupHost runs on the lookup's goroutine.
func lookupHost(ctx context.Context, lookup func(string) ([]netip.Addr, error), host string) ([]netip.Addr, error) {
	if lookup != nil {
		return lookup(host)
	}
	ias, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.Addr, 0, len(ias))
	for _, ia := range ias {
		if ip4 := ia.IP.To4(); ip4 != nil {
			addrs = append(addrs, netip.AddrFrom4([4]byte(ip4)))
		} else if ip, ok := netip.AddrFromSlice(ia.IP); ok {
			addrs = append(addrs, ip.WithZone(ia.Zone))
		}
	}
	return addrs, nil
}

// release gives back what the lookup holds, once; it reports whether the
// lookup was still outstanding.
func (r *resolution) release() bool {
	if r.released {
		return false
	}
	r.released = true
	r.d.extRefs--
	delete(r.d.atClose, r)
	r.cancel()
	return true
}

// stop abandons the lookup: cb will not be called.
func (r *resolution) stop() {
	if r != nil {
		r.release()
	}
}

func (r *resolution) dispatcherClosed() {
	if r.release() {
		r.cb(nil, ErrClosed)
	}
}
