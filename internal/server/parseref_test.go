package server

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// parseHeadRef is the two-pass parser that scanHead replaced (cutLine,
// then the fields of each line), kept as the reference its results must
// match.
func parseHeadRef(b []byte) (r request, status int) {
	// Empty lines before the request line are ignored (RFC 9112 §2.2);
	// a bare CR is part of the next line (and refused there).
	for {
		if after, ok := bytes.CutPrefix(b, []byte("\r\n")); ok {
			b = after
		} else if after, ok := bytes.CutPrefix(b, []byte("\n")); ok {
			b = after
		} else {
			break
		}
	}
	line, rest := cutLine(b)
	if line == nil {
		return r, 400
	}
	// request-line = method SP request-target SP HTTP-version
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return r, 400
	}
	r.head = string(line[:sp]) == "HEAD"
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return r, 400
	}
	for _, c := range line[:sp] {
		if c <= ' ' || c == 0x7f {
			return r, 400
		}
	}
	v := line[sp+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return r, 400
	}
	if v[5] != '1' {
		return r, 505
	}
	http10 := v[7] == '0'
	r.http10 = http10

	var (
		host, cl, closeTok, keepTok bool
		codings                     []string
	)
	r.length = -1
	for {
		line, rest = cutLine(rest)
		if line == nil {
			return r, 400 // a bare CR
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return r, 400 // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return r, 400
		}
		name, val := line[:colon], trimOWS(line[colon+1:])
		for _, c := range val {
			if c < ' ' && c != '\t' || c == 0x7f {
				return r, 400
			}
		}
		switch len(name) {
		case 4:
			if eqFold(name, "host") {
				if host || !validHostRef(string(val)) {
					return r, 400
				}
				host = true
			}
		case 6:
			// An HTTP/1.0 client is never sent a 1xx (RFC 9110 §15.2).
			if eqFold(name, "expect") && eqFold(val, "100-continue") && !http10 {
				r.expect100 = true
			}
		case 10:
			if eqFold(name, "connection") {
				for tok := range bytes.SplitSeq(val, []byte(",")) {
					tok = trimOWS(tok)
					closeTok = closeTok || eqFold(tok, "close")
					keepTok = keepTok || eqFold(tok, "keep-alive")
				}
			}
		case 14:
			if eqFold(name, "content-length") {
				n, ok := parseDecimal(val)
				if !ok || cl && n != r.length {
					return r, 400
				}
				cl, r.length = true, n
			}
		case 17:
			if eqFold(name, "transfer-encoding") {
				// The codings of all Transfer-Encoding lines form one
				// list; chunked must be its last element, and only there.
				// A line without any coding is refused.
				n := len(codings)
				for tok := range strings.SplitSeq(string(val), ",") {
					if tok = strings.Trim(tok, " \t"); tok != "" {
						if n := len(codings); n > 0 && strings.EqualFold(codings[n-1], "chunked") {
							return r, 400 // a coding after chunked
						}
						codings = append(codings, tok)
					}
				}
				if len(codings) == n {
					return r, 400
				}
			}
		}
	}
	te := len(codings) > 0
	switch {
	case !http10 && !host:
		return r, 400
	case te && (http10 || cl || !strings.EqualFold(codings[len(codings)-1], "chunked")):
		return r, 400
	case len(codings) > 1:
		return r, 501 // only chunked is implemented
	case te:
		r.body = bodyChunked
	case cl && r.length > 0:
		r.body = bodyLength
	}
	if !cl {
		r.length = 0
	}
	if http10 {
		r.keepAlive = keepTok && !closeTok
	} else {
		r.keepAlive = !closeTok
	}
	return r, 0
}

// cutLine splits off the first line of b without its CRLF or LF. line is
// nil for a line with a bare CR in it, or when b holds no line end.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b
	}
	line, ok := trimCR(b[:i])
	if !ok {
		return nil, b[i+1:]
	}
	return line, b[i+1:]
}

// validHostRef: Host = uri-host [ ":" port ] or empty, uri-host an
// IP-literal or a non-empty reg-name (RFC 3986), commas refused.
func validHostRef(v string) bool {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+;="
	onlyOf := func(s, set string) bool {
		return !strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(set, r) })
	}
	if v == "" {
		return true
	}
	var host, port string
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 2 || !onlyOf(v[1:end], chars+":") {
			return false
		}
		host, port = v[:end+1], v[end+1:]
	} else {
		host, port, _ = strings.Cut(v, ":")
		if port != "" || strings.HasSuffix(v, ":") {
			port = ":" + port
		}
		if host == "" {
			return false
		}
		parts := strings.Split(host, "%")
		for _, p := range parts[1:] {
			if len(p) < 2 || !onlyOf(p[:2], "0123456789abcdefABCDEF") {
				return false
			}
		}
		if !onlyOf(strings.ReplaceAll(host, "%", ""), chars) {
			return false
		}
	}
	if port == "" {
		return true
	}
	return port[0] == ':' && onlyOf(port[1:], "0123456789")
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

// BenchmarkHTTPParseRef: the two-pass parser that scanHead replaced, for
// comparison with BenchmarkHTTPParse.
func BenchmarkHTTPParseRef(b *testing.B) {
	req := []byte(benchRequest)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		e := findHeadEnd(req, 0)
		r, status := parseHeadRef(req[:e])
		if e != len(req) || status != 0 || !r.keepAlive {
			b.Fatal(e, status, r)
		}
	}
}

// checkScanHead is what FuzzHTTPParse and TestScanHeadMatchesReference
// check on b, whose head ends at whole (findHeadEnd(b, 0)): parseHead
// matches the reference on the complete head; and the fast path, scanHead
// on the whole buffer for a buffer that does not start with an empty
// line, ends where findHeadEnd does and matches the reference too.
func checkScanHead(t *testing.T, b []byte, whole int) {
	t.Helper()
	if whole > 0 {
		r, status := parseHead(b[:whole])
		rr, rstatus := parseHeadRef(b[:whole])
		if status != rstatus || status == 0 && r != rr {
			t.Fatalf("complete head %q: %d %+v, reference %d %+v", b[:whole], status, r, rstatus, rr)
		}
	}
	if n, r, status := scanHead(b); status == 0 && n >= 0 && b[0] != '\r' && b[0] != '\n' {
		if n != whole {
			t.Fatalf("%q: scanHead ends at %d, findHeadEnd at %d", b, n, whole)
		}
		if rr, rstatus := parseHeadRef(b[:n]); rstatus != 0 || r != rr {
			t.Fatalf("%q: scanHead %+v, reference %d %+v", b[:n], r, rstatus, rr)
		}
	}
}

// TestScanHeadMatchesReference: what FuzzHTTPParse checks, on heads made
// by mutating well-formed ones with the bytes that matter to the framing,
// so that every go test run compares scanHead with the reference.
func TestScanHeadMatchesReference(t *testing.T) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a?b HTTP/1.0\nConnection: keep-alive\n\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
		"POST / HTTP/1.1\r\nhost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
		"\r\n\nGET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: x, keep-alive\r\n\r\nhi",
		"\r\n\rGET / HTTP/1.1\r\nTransfer-Encoding: ,\r\nHost: a, b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: x,\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a%2fb:8080\r\n\r\n",
	}
	alphabet := []byte("\r\n \t:,\x00\x7f\x80aZ0-/[]%")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		b := []byte(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
			}
			if len(b) == 0 {
				break
			}
		}
		checkScanHead(t, b, findHeadEnd(b, 0))
	}
}
