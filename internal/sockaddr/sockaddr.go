//go:build linux

// Package sockaddr converts socket addresses between their raw kernel form
// (unix.RawSockaddrAny and a length, as recvfrom(2), accept4(2),
// getsockname(2) fill them in and sendto(2) takes them) and Go values
// (netip.AddrPort for AF_INET and AF_INET6, a path string for AF_UNIX). It
// is the dispatcher's one place for sockaddr byte layout, byte order and
// IPv6 zones, and so for the unsafe code they need.
//
// What must stay true:
//   - Decode never reads beyond what the kernel says it wrote (alen, for
//     a Unix path) nor beyond the raw buffer, whatever the bytes;
//   - Encode* and Decode are inverse: decoding an encoding gives back the
//     address (FuzzSockaddrRoundTrip);
//   - decoding an AF_INET or AF_INET6 address allocates nothing, but for
//     an IPv6 zone whose interface index is 100 or more (its name is
//     formatted into a new string; smaller ones are strconv's constants,
//     and netip interns zones); a Unix path allocates its string.
package sockaddr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrFamily: the raw address is of a family other than AF_INET, AF_INET6
// and AF_UNIX.
var ErrFamily = errors.New("unknown socket family")

// Decode reads the raw address rsa of length alen: for AF_INET and
// AF_INET6 the address and port (with the zone of a nonzero scope id; an
// IPv4-mapped address stays mapped), for AF_UNIX the path ("@name" for an
// abstract socket, "" for an unbound one). Another family is ErrFamily.
func Decode(rsa *unix.RawSockaddrAny, alen uint32) (ap netip.AddrPort, path string, err error) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), ntohs(p.Port)), "", nil
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		ip := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(p.Scope_id), 10))
		}
		return netip.AddrPortFrom(ip, ntohs(p.Port)), "", nil
	case unix.AF_UNIX:
		return netip.AddrPort{}, unixPath(rsa, alen), nil
	}
	return netip.AddrPort{}, "", ErrFamily
}

// unixPath reads the path of a sockaddr_un of length alen.
func unixPath(rsa *unix.RawSockaddrAny, alen uint32) string {
	p := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
	n := int(alen) - int(unsafe.Offsetof(p.Path))
	if n <= 0 {
		return ""
	}
	n = min(n, len(p.Path))
	b := unsafe.Slice((*byte)(unsafe.Pointer(&p.Path[0])), n)
	if b[0] == 0 {
		// Abstract: the name is every byte after the NUL.
		return "@" + string(b[1:])
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Getsockname and Getpeername are getsockname(2) and getpeername(2) into
// a raw address; they return its length. (x/sys's versions convert it to
// a unix.Sockaddr, which Decode would have to decode a second way.)
func Getsockname(fd int, rsa *unix.RawSockaddrAny) (uint32, error) {
	return getname(unix.SYS_GETSOCKNAME, fd, rsa)
}

func Getpeername(fd int, rsa *unix.RawSockaddrAny) (uint32, error) {
	return getname(unix.SYS_GETPEERNAME, fd, rsa)
}

func getname(trap uintptr, fd int, rsa *unix.RawSockaddrAny) (uint32, error) {
	alen := uint32(unix.SizeofSockaddrAny)
	_, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&alen)))
	if e != 0 {
		return 0, e
	}
	return alen, nil
}

// Host formats an IP address as Nim's getAddrString does: without the
// port and the zone, an IPv4-mapped address as plain IPv4.
func Host(ip netip.Addr) string { return ip.Unmap().WithZone("").String() }

// EncodeInet writes ap into rsa as a sockaddr_in (an IPv4 address) or a
// sockaddr_in6 (an IPv6 or IPv4-mapped one) and returns its length, 0 if
// ap's address is not valid.
func EncodeInet(rsa *unix.RawSockaddrAny, ap netip.AddrPort) uint32 {
	ip := ap.Addr()
	switch {
	case ip.Is4():
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		*p = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(ap.Port()), Addr: ip.As4()}
		return unix.SizeofSockaddrInet4
	case ip.Is6():
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		*p = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(ap.Port()), Addr: ip.As16(), Scope_id: ZoneID(ip.Zone())}
		return unix.SizeofSockaddrInet6
	}
	return 0
}

// EncodeUnix writes path into rsa as a sockaddr_un and returns its
// length, 0 if path is not valid (ValidUnixPath). A leading '@' names an
// abstract socket, as in Go's net package.
func EncodeUnix(rsa *unix.RawSockaddrAny, path string) uint32 {
	if !ValidUnixPath(path) {
		return 0
	}
	p := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
	*p = unix.RawSockaddrUnix{Family: unix.AF_UNIX}
	for i := 0; i < len(path); i++ {
		p.Path[i] = int8(path[i])
	}
	n := len(path)
	if path[0] == '@' {
		// Abstract: NUL first, and the length says where the name ends.
		p.Path[0] = 0
	} else {
		n++ // the terminating NUL, there already
	}
	return uint32(unsafe.Offsetof(p.Path)) + uint32(n)
}

// ValidUnixPath reports whether path fits a sockaddr_un and names what it
// says: not empty, shorter than sun_path, and without a NUL unless it is
// abstract (the kernel would stop at the NUL and use another socket).
func ValidUnixPath(path string) bool {
	var raw unix.RawSockaddrUnix
	if path == "" || len(path) >= len(raw.Path) {
		return false
	}
	return path[0] == '@' || strings.IndexByte(path, 0) < 0
}

// Inet converts ap for unix.Bind and unix.Connect (an IPv4-mapped address
// stays IPv6, for dual-stack sockets).
func Inet(ap netip.AddrPort) unix.Sockaddr {
	ip := ap.Addr()
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16(), ZoneId: ZoneID(ip.Zone())}
}

// ZoneID is the interface index of an IPv6 zone: "" is 0, a number is
// taken as the index, a name is looked up (0 if there is no such
// interface).
func ZoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// ntohs turns a port as stored in a raw sockaddr (network byte order, in
// memory) into a number; htons is its inverse.
func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}

func htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}
