package server

import (
	"strings"
	"testing"
)

// The parser never panics on any input, findHeadEnd finds the same end
// however the head is split, scanHead agrees with findHeadEnd and with the
// two-pass parser it replaced, and consume never uses more than it is
// given.
func FuzzHTTPParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"GET / HTTP/1.0\nConnection: keep-alive\n\n",
		"\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
		"\r\rGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nGET /",
		// Each defect of the hardening pass, as a seed.
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , ,\r\n\r\n",
		"1;a=" + strings.Repeat("b", 6000) + "\r\nx\r\n0\r\n\r\n",
		"5;\x00\x01garbage\r\nhello\r\n0\r\n\r\n",
		"5 ; a = \"q\\\"\" ;b\r\nhello\r\n0\r\n\r\n",
		"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"0\r\nT: v\x00\r\n folded\r\nno colon\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		whole := findHeadEnd(b, 0)
		if whole > len(b) {
			t.Fatalf("head end %d beyond %d bytes", whole, len(b))
		}
		// Split in two: the search resumed from resumeAt finds the
		// same end.
		k := int(split) % (len(b) + 1)
		got := findHeadEnd(b[:k], 0)
		if got < 0 {
			got = findHeadEnd(b, resumeAt(b[:k]))
		}
		if got != whole {
			t.Fatalf("split at %d: end %d, whole %d", k, got, whole)
		}
		checkScanHead(t, b, whole)
		var c chunked
		for rest := b; len(rest) > 0; {
			n, done, status := c.consume(rest, 1<<20, 1024)
			if n < 0 || n > len(rest) {
				t.Fatalf("consumed %d of %d", n, len(rest))
			}
			if done || status != 0 || n == 0 {
				break
			}
			rest = rest[n:]
		}
	})
}
