package asyncdispatch

import (
	"net/netip"
	"time"
)

// Test seams of the socket layer (internal/poll/export_test.go style).

// SetLookup makes d resolve names with fn (run on the lookup goroutine)
// instead of net.DefaultResolver.
func SetLookup(d *Dispatcher, fn func(host string) ([]netip.Addr, error)) { d.sock.lookup = fn }

// SetFallbackDelay replaces d's Happy Eyeballs delay.
func SetFallbackDelay(d *Dispatcher, delay time.Duration) { d.sock.fallbackDelay = delay }

// AcceptRetries is the number of accept attempts d made that hit
// descriptor exhaustion.
func AcceptRetries(d *Dispatcher) int { return d.sock.acceptRetries }

// Interleave is Dial's attempt order.
var Interleave = interleave

// CurG is curG: the calling goroutine's identity.
var CurG = curG

// RunningG is the goroutine of the async procedure running on d, 0 when
// none is.
func RunningG(d *Dispatcher) uintptr { return d.sock.runG.Load() }
