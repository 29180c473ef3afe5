//go:build linux

package sockaddr

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// raw copies b into a raw sockaddr, as the kernel would have written it.
func raw(b []byte) *unix.RawSockaddrAny {
	var rsa unix.RawSockaddrAny
	copy(bytesOf(&rsa), b)
	return &rsa
}

func bytesOf(rsa *unix.RawSockaddrAny) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(rsa)), unix.SizeofSockaddrAny)
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{
		"127.0.0.1:80", "0.0.0.0:0", "255.255.255.255:65535",
		"[::1]:8080", "[::ffff:1.2.3.4]:1", "[fe80::1%7]:22", "[fe80::1%99]:22", "[fe80::1%4000000000]:9",
	} {
		ap := netip.MustParseAddrPort(s)
		var rsa unix.RawSockaddrAny
		n := EncodeInet(&rsa, ap)
		got, path, err := Decode(&rsa, n)
		if err != nil || got != ap || path != "" {
			t.Errorf("%s: encoded in %d bytes, decoded %v %q %v", s, n, got, path, err)
		}
	}
	for _, p := range []string{"/tmp/x.sock", "@abstract", "@", "@with\x00nul", strings.Repeat("p", 107)} {
		var rsa unix.RawSockaddrAny
		n := EncodeUnix(&rsa, p)
		got, path, err := Decode(&rsa, n)
		if err != nil || got.IsValid() || path != p {
			t.Errorf("%q: encoded in %d bytes, decoded %v %q %v", p, n, got, path, err)
		}
	}
	for _, p := range []string{"", "/a\x00b", strings.Repeat("p", 108)} {
		var rsa unix.RawSockaddrAny
		if n := EncodeUnix(&rsa, p); n != 0 {
			t.Errorf("invalid path %q encoded in %d bytes", p, n)
		}
	}
	var rsa unix.RawSockaddrAny
	if n := EncodeInet(&rsa, netip.AddrPort{}); n != 0 {
		t.Errorf("invalid address encoded in %d bytes", n)
	}
}

// The wire layout: the port in network byte order, the scope id in host
// order, whatever the machine's byte order.
func TestLayout(t *testing.T) {
	var rsa unix.RawSockaddrAny
	EncodeInet(&rsa, netip.MustParseAddrPort("[fe80::1%5]:8080"))
	b := bytesOf(&rsa)
	if binary.NativeEndian.Uint16(b[0:]) != unix.AF_INET6 || b[2] != 0x1f || b[3] != 0x90 || binary.NativeEndian.Uint32(b[24:]) != 5 {
		t.Fatalf("sockaddr_in6 bytes % x", b[:28])
	}
	EncodeInet(&rsa, netip.MustParseAddrPort("10.1.2.3:258"))
	if b[2] != 1 || b[3] != 2 || b[4] != 10 || b[7] != 3 {
		t.Fatalf("sockaddr_in bytes % x", b[:16])
	}
	if ntohs(htons(0x1234)) != 0x1234 {
		t.Fatal("htons/ntohs")
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1", "::1": "::1", "::ffff:10.0.0.1": "10.0.0.1", "fe80::1%eth0": "fe80::1",
	} {
		if got := Host(netip.MustParseAddr(in)); got != want {
			t.Errorf("Host(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestZoneID(t *testing.T) {
	if ZoneID("") != 0 || ZoneID("12") != 12 || ZoneID("no-such-interface") != 0 {
		t.Fatal("ZoneID")
	}
	if ZoneID("lo") == 0 {
		t.Log("no interface named lo here")
	}
}

func TestUnknownFamily(t *testing.T) {
	ap, path, err := Decode(raw([]byte{99, 0}), 16)
	if err != ErrFamily || ap.IsValid() || path != "" {
		t.Fatal(ap, path, err)
	}
}

// Decoding an IP address allocates nothing, a zone included as long as
// its index is below 100 (strconv's constants, and netip interns zones).
func TestDecodeAllocations(t *testing.T) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:80", "[fe80::1%3]:80", "[fe80::1%99]:80"} {
		var rsa unix.RawSockaddrAny
		n := EncodeInet(&rsa, netip.MustParseAddrPort(s))
		Decode(&rsa, n) // the first sight of a zone interns it
		if a := testing.AllocsPerRun(100, func() { Decode(&rsa, n) }); a != 0 {
			t.Errorf("decoding %s: %.1f allocations", s, a)
		}
	}
}

// Against the kernel: what getsockname says about a bound socket.
func TestGetsockname(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, Inet(netip.MustParseAddrPort("127.0.0.1:0"))); err != nil {
		t.Fatal(err)
	}
	var rsa unix.RawSockaddrAny
	n, err := Getsockname(fd, &rsa)
	if err != nil {
		t.Fatal(err)
	}
	ap, _, err := Decode(&rsa, n)
	sa, _ := unix.Getsockname(fd)
	if err != nil || ap.Addr() != netip.MustParseAddr("127.0.0.1") || int(ap.Port()) != sa.(*unix.SockaddrInet4).Port {
		t.Fatalf("%v %v (x/sys says %+v)", ap, err, sa)
	}
	if _, err := Getpeername(fd, &rsa); err != unix.ENOTCONN {
		t.Fatalf("getpeername of an unconnected socket: %v", err)
	}
}

// Raw socket addresses as the kernel hands them to a receive or an
// accept, whatever their bytes and length: no panic, and what comes out
// is of the family the bytes say.
func FuzzSockaddrDecode(f *testing.F) {
	f.Add([]byte{2, 0, 0x1f, 0x90, 127, 0, 0, 1}, uint32(16))
	f.Add(append([]byte{10, 0, 0, 80, 0, 0, 0, 0}, netip.MustParseAddr("::ffff:1.2.3.4").AsSlice()...), uint32(28))
	f.Add([]byte{1, 0, '/', 't', 'm', 'p', 0}, uint32(7))
	f.Add([]byte{1, 0, 0, 'a', 'b'}, uint32(5))
	f.Add([]byte{1, 0}, uint32(200))
	f.Add([]byte{99, 0}, uint32(2))
	f.Fuzz(func(t *testing.T, b []byte, alen uint32) {
		rsa := raw(b)
		from, path, err := Decode(rsa, alen)
		rb := bytesOf(rsa)
		switch binary.NativeEndian.Uint16(rb) {
		case unix.AF_INET:
			if err != nil || !from.Addr().Is4() || path != "" || from.Port() != binary.BigEndian.Uint16(rb[2:]) {
				t.Fatalf("AF_INET: %v %q %v", from, path, err)
			}
		case unix.AF_INET6:
			zone := ""
			if id := binary.NativeEndian.Uint32(rb[24:]); id != 0 {
				zone = strconv.FormatUint(uint64(id), 10)
			}
			if err != nil || !from.Addr().Is6() || path != "" || from.Addr().Zone() != zone || strings.Contains(Host(from.Addr()), "%") {
				t.Fatalf("AF_INET6: %v %q %v", from, path, err)
			}
		case unix.AF_UNIX:
			if err != nil || from.IsValid() {
				t.Fatalf("AF_UNIX: %v %q %v", from, path, err)
			}
			if int64(alen)-2 <= 0 && path != "" {
				t.Fatalf("AF_UNIX with length %d: path %q", alen, path)
			}
			if len(path) > 109 {
				t.Fatalf("AF_UNIX path of %d bytes", len(path))
			}
		default:
			if err == nil || from.IsValid() || path != "" {
				t.Fatalf("unknown family: %v %q %v", from, path, err)
			}
		}
	})
}

// SendTo's and SendToUnix's encodings read back by the receive path give
// the address that was encoded.
func FuzzSockaddrRoundTrip(f *testing.F) {
	f.Add(netip.MustParseAddr("127.0.0.1").AsSlice(), uint16(80), "/tmp/x")
	f.Add(netip.MustParseAddr("::1").AsSlice(), uint16(0), "@abstract")
	f.Add(netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), uint16(65535), "@")
	f.Add([]byte{1, 2, 3}, uint16(1), "")
	f.Add([]byte{}, uint16(1), strings.Repeat("x", 108))
	f.Fuzz(func(t *testing.T, ipBytes []byte, port uint16, path string) {
		ip, ok := netip.AddrFromSlice(ipBytes)
		ap := netip.AddrPortFrom(ip, port)
		var rsa unix.RawSockaddrAny
		n := EncodeInet(&rsa, ap)
		if !ok {
			if n != 0 {
				t.Fatalf("invalid address encoded in %d bytes", n)
			}
		} else {
			from, _, err := Decode(&rsa, n)
			if err != nil || from != ap {
				t.Fatalf("%v encoded (%d bytes) and decoded: %v, %v", ap, n, from, err)
			}
		}
		rsa = unix.RawSockaddrAny{}
		n = EncodeUnix(&rsa, path)
		// A path with a NUL would name another socket (the kernel stops
		// there), unless it is abstract ("@..."), where any byte goes.
		if path == "" || len(path) >= 108 || (path[0] != '@' && strings.IndexByte(path, 0) >= 0) {
			if n != 0 {
				t.Fatalf("invalid path %q encoded in %d bytes", path, n)
			}
			return
		}
		from, got, err := Decode(&rsa, n)
		if err != nil || from.IsValid() || got != path {
			t.Fatalf("path %q encoded (%d bytes) and decoded: %q, %v", path, n, got, err)
		}
	})
}
