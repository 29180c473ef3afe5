package asyncdispatch

import (
	"context"
	"net/netip"
	"os"
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

// The socket operations, with the reference's names.

// CreateAsyncNativeSocket creates a socket registered with the global
// dispatcher (see Dispatcher.CreateAsyncNativeSocket).
func CreateAsyncNativeSocket(domain, sockType, protocol int, inheritable bool) (AsyncFD, error) {
	return GetGlobalDispatcher().CreateAsyncNativeSocket(domain, sockType, protocol, inheritable)
}

// CloseSocket closes a socket of the global dispatcher (see
// Dispatcher.CloseSocket).
func CloseSocket(fd AsyncFD) error { return GetGlobalDispatcher().CloseSocket(fd) }

// Listen creates a listening or bound socket on the global dispatcher (see
// Dispatcher.Listen).
func Listen(network, address string) (AsyncFD, error) {
	return GetGlobalDispatcher().Listen(network, address)
}

// ListenContext creates a listening or bound socket on the global
// dispatcher, resolving a host name without blocking the loop (see
// Dispatcher.ListenContext).
func ListenContext(ctx context.Context, network, address string) *Future[AsyncFD] {
	return GetGlobalDispatcher().ListenContext(ctx, network, address)
}

// DialContext connects a socket of the global dispatcher (see
// Dispatcher.DialContext).
func DialContext(ctx context.Context, network, address string) *Future[AsyncFD] {
	return GetGlobalDispatcher().DialContext(ctx, network, address)
}

// NewConn returns a net.Conn view of a socket of the global dispatcher
// (see Dispatcher.Conn; the package-level name differs, as Conn is the
// type).
func NewConn(fd AsyncFD) (*Conn, error) { return GetGlobalDispatcher().Conn(fd) }

// NewListener returns a net.Listener view of a listening socket of the
// global dispatcher (see Dispatcher.Listener).
func NewListener(fd AsyncFD) (*Listener, error) { return GetGlobalDispatcher().Listener(fd) }

// Recv receives on the global dispatcher (see Dispatcher.Recv).
func Recv(fd AsyncFD, size int, flags SocketFlag) *Future[[]byte] {
	return GetGlobalDispatcher().Recv(fd, size, flags)
}

// RecvString receives a string on the global dispatcher (see
// Dispatcher.RecvString).
func RecvString(fd AsyncFD, size int, flags SocketFlag) *Future[string] {
	return GetGlobalDispatcher().RecvString(fd, size, flags)
}

// RecvInto receives into buf on the global dispatcher (see
// Dispatcher.RecvInto).
func RecvInto(fd AsyncFD, buf []byte, flags SocketFlag) *Future[int] {
	return GetGlobalDispatcher().RecvInto(fd, buf, flags)
}

// RecvFromInto receives a datagram on the global dispatcher (see
// Dispatcher.RecvFromInto).
func RecvFromInto(fd AsyncFD, buf []byte, flags SocketFlag) *Future[RecvFromResult] {
	return GetGlobalDispatcher().RecvFromInto(fd, buf, flags)
}

// Send sends on the global dispatcher (see Dispatcher.Send).
func Send(fd AsyncFD, data []byte, flags SocketFlag) *Future[Void] {
	return GetGlobalDispatcher().Send(fd, data, flags)
}

// SendString sends a string on the global dispatcher (see
// Dispatcher.SendString).
func SendString(fd AsyncFD, s string, flags SocketFlag) *Future[Void] {
	return GetGlobalDispatcher().SendString(fd, s, flags)
}

// SendTo sends a datagram on the global dispatcher (see
// Dispatcher.SendTo).
func SendTo(fd AsyncFD, data []byte, to netip.AddrPort, flags SocketFlag) *Future[Void] {
	return GetGlobalDispatcher().SendTo(fd, data, to, flags)
}

// SendToUnix sends a Unix datagram on the global dispatcher (see
// Dispatcher.SendToUnix).
func SendToUnix(fd AsyncFD, data []byte, path string, flags SocketFlag) *Future[Void] {
	return GetGlobalDispatcher().SendToUnix(fd, data, path, flags)
}

// Connect connects a socket of the global dispatcher (see
// Dispatcher.Connect).
func Connect(fd AsyncFD, address string, port int, domain int) *Future[Void] {
	return GetGlobalDispatcher().Connect(fd, address, port, domain)
}

// Dial dials on the global dispatcher (see Dispatcher.Dial).
func Dial(address string, port int, protocol int) *Future[AsyncFD] {
	return GetGlobalDispatcher().Dial(address, port, protocol)
}

// AcceptAddr accepts on the global dispatcher (see Dispatcher.AcceptAddr).
func AcceptAddr(fd AsyncFD, flags SocketFlag, inheritable bool) *Future[AcceptResult] {
	return GetGlobalDispatcher().AcceptAddr(fd, flags, inheritable)
}

// Accept accepts on the global dispatcher (see Dispatcher.Accept).
func Accept(fd AsyncFD, flags SocketFlag, inheritable bool) *Future[AsyncFD] {
	return GetGlobalDispatcher().Accept(fd, flags, inheritable)
}

// SetAcceptErrorHandler sets the global dispatcher's accept back-off
// reporter (see Dispatcher.SetAcceptErrorHandler).
func SetAcceptErrorHandler(h func(listener AsyncFD, err error)) {
	GetGlobalDispatcher().SetAcceptErrorHandler(h)
}

// RegisteredDescriptors is the global dispatcher's RegisteredDescriptors.
func RegisteredDescriptors() int { return GetGlobalDispatcher().RegisteredDescriptors() }

// Events, signals and processes.

// AddEvent registers ev with the global dispatcher (see
// Dispatcher.AddEvent).
func AddEvent(ev *AsyncEvent, cb Callback) error { return GetGlobalDispatcher().AddEvent(ev, cb) }

// UnregisterEvent removes ev from the global dispatcher (see
// Dispatcher.UnregisterEvent).
func UnregisterEvent(ev *AsyncEvent) error { return GetGlobalDispatcher().UnregisterEvent(ev) }

// AddSignal registers a signal handler on the global dispatcher (see
// Dispatcher.AddSignal).
func AddSignal(sig os.Signal, cb Callback) error { return GetGlobalDispatcher().AddSignal(sig, cb) }

// RemoveSignal removes the global dispatcher's handlers for sig (see
// Dispatcher.RemoveSignal).
func RemoveSignal(sig os.Signal) error { return GetGlobalDispatcher().RemoveSignal(sig) }

// AddProcess watches pid on the global dispatcher (see
// Dispatcher.AddProcess).
func AddProcess(pid int, cb Callback) error { return GetGlobalDispatcher().AddProcess(pid, cb) }

// WaitProcess waits for pid on the global dispatcher (see
// Dispatcher.WaitProcess).
func WaitProcess(pid int) *Future[ExitStatus] { return GetGlobalDispatcher().WaitProcess(pid) }
