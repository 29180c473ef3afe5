package asyncdispatch

import "net/netip"

// The socket operations on the global dispatcher, with the reference's
// names, for code that never names a dispatcher (see global.go). Each is
// exactly the Dispatcher method of the same name on GetGlobalDispatcher().

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
