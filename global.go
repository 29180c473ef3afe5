package asyncdispatch

import (
	"sync"
	"sync/atomic"
	"time"
)

// The global dispatcher. Nim keeps one dispatcher per thread and its
// procedures use it implicitly; Go has no thread-locals, so every operation
// here is a method on *Dispatcher, and the package-level functions below
// with the reference's names are thin wrappers over one documented
// process-wide dispatcher, for code that never names one (`waitFor main()`,
// `sleepAsync(100)`). Like any dispatcher it must be driven from one
// goroutine at a time.

var (
	global   atomic.Pointer[Dispatcher]
	globalMu sync.Mutex
)

// GetGlobalDispatcher returns the global dispatcher, creating it on first
// use (and again after it was closed). It panics if the epoll instance
// cannot be created (out of descriptors), as there is no error to return.
func GetGlobalDispatcher() *Dispatcher {
	if d := global.Load(); d != nil {
		return d
	}
	globalMu.Lock()
	defer globalMu.Unlock()
	if d := global.Load(); d != nil {
		return d
	}
	d, err := NewDispatcher()
	if err != nil {
		panic("asyncdispatch: creating the global dispatcher: " + err.Error())
	}
	global.Store(d)
	return d
}

// SetGlobalDispatcher makes d the global dispatcher (nil forgets it; the
// next GetGlobalDispatcher creates a new one). The previous one is not
// closed.
func SetGlobalDispatcher(d *Dispatcher) { global.Store(d) }

// Poll runs one iteration of the global dispatcher (see Dispatcher.Poll).
func Poll(timeout time.Duration) error { return GetGlobalDispatcher().Poll(timeout) }

// Drain runs the global dispatcher (see Dispatcher.Drain).
func Drain(timeout time.Duration) error { return GetGlobalDispatcher().Drain(timeout) }

// RunForever runs the global dispatcher (see Dispatcher.RunForever).
func RunForever() error { return GetGlobalDispatcher().RunForever() }

// CallSoon queues cb on the global dispatcher (see Dispatcher.CallSoon).
func CallSoon(cb func()) { GetGlobalDispatcher().CallSoon(cb) }

// HasPendingOperations reports whether the global dispatcher has pending
// work (see Dispatcher.HasPendingOperations).
func HasPendingOperations() bool { return GetGlobalDispatcher().HasPendingOperations() }

// ScheduleCallbacks runs the global dispatcher's queued callbacks (see
// Dispatcher.ScheduleCallbacks).
func ScheduleCallbacks() bool { return GetGlobalDispatcher().ScheduleCallbacks() }

// GetIoHandler returns the global dispatcher's epoll descriptor.
func GetIoHandler() int { return GetGlobalDispatcher().GetIoHandler() }

// SleepAsync sleeps on the global dispatcher (see Dispatcher.SleepAsync).
func SleepAsync(d time.Duration) *Future[Void] { return GetGlobalDispatcher().SleepAsync(d) }

// AddTimer adds a timer to the global dispatcher (see Dispatcher.AddTimer).
func AddTimer(timeout time.Duration, oneshot bool, cb Callback) (*Timer, error) {
	return GetGlobalDispatcher().AddTimer(timeout, oneshot, cb)
}

// Register registers fd with the global dispatcher.
func Register(fd AsyncFD) error { return GetGlobalDispatcher().Register(fd) }

// Unregister unregisters fd from the global dispatcher.
func Unregister(fd AsyncFD) error { return GetGlobalDispatcher().Unregister(fd) }

// Contains reports whether fd is registered with the global dispatcher.
func Contains(fd AsyncFD) bool { return GetGlobalDispatcher().Contains(fd) }

// AddRead watches fd for readability on the global dispatcher.
func AddRead(fd AsyncFD, cb Callback) error { return GetGlobalDispatcher().AddRead(fd, cb) }

// AddWrite watches fd for writability on the global dispatcher.
func AddWrite(fd AsyncFD, cb Callback) error { return GetGlobalDispatcher().AddWrite(fd, cb) }

// ActiveDescriptors is the global dispatcher's ActiveDescriptors.
func ActiveDescriptors() int { return GetGlobalDispatcher().ActiveDescriptors() }

// GetGlobalDispatcherIfAny returns the global dispatcher if one exists,
// without creating it.
func GetGlobalDispatcherIfAny() *Dispatcher { return global.Load() }
