package server

import "bytes"

// HTTP/1.1 request framing (RFC 9112), as much of it as a server that
// answers every request the same way needs: where a request ends, whether
// the connection stays open, and which requests to refuse. The parser
// works on bytes in the connection's buffer and allocates nothing.
//
// Accepted: CRLF or bare LF line ends (RFC 9112 §2.2), empty lines (CRLF
// or LF) before the request line, HTTP/1.0 and HTTP/1.1 (other 1.x minors
// as 1.1), Content-Length and chunked bodies (read and discarded; chunk
// extensions checked against their grammar and counted as body bytes),
// Expect: 100-continue. Refused, each with its status and then a close: a
// bare CR (before the request line too), obs-fold, whitespace before a
// colon, a missing or repeated Host in HTTP/1.1, a Host that is not one
// uri-host[:port], Content-Length together with Transfer-Encoding,
// differing Content-Lengths, a Transfer-Encoding that lists no coding, or
// whose last coding is not chunked, or sent with HTTP/1.0, a chunk line
// over 4 KiB or with malformed extensions, a malformed trailer field (all
// 400 — request smuggling starts with these), a transfer coding other
// than chunked before it (501), a head over the limit (431; 414 while
// still in the request line), a body over the limit (413), a major
// version other than 1 (505).

// request is what the server needs of a parsed request head.
type request struct {
	// head: the method is HEAD, the response has no body.
	head bool
	// http10: the request is HTTP/1.0.
	http10 bool
	// keepAlive: the connection stays open after the response.
	keepAlive bool
	// expect100: the client waits for "100 Continue" before the body.
	expect100 bool
	body      bodyKind
	// length is the Content-Length of a bodyLength request.
	length int64
}

type bodyKind uint8

const (
	bodyNone bodyKind = iota
	bodyLength
	bodyChunked
)

// findHeadEnd returns the length of the request head at the start of b —
// up to and including the empty line that ends it — or -1 if b does not
// hold all of it yet. from is where to resume a search that found nothing
// in b[:from] before (a head arriving a byte at a time is not rescanned
// from its start every time). Empty lines before the request line do not
// end a head.
func findHeadEnd(b []byte, from int) int {
	start := 0
	for start < len(b) && (b[start] == '\n' || b[start] == '\r' && start+1 < len(b) && b[start+1] == '\n') {
		if b[start] == '\r' {
			start++
		}
		start++
	}
	i := max(from, start)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
		if i+1 >= len(b) {
			return -1
		}
	}
}

// resumeAt is where findHeadEnd should resume after failing on b: far
// enough back that an empty line split across two reads is still seen.
func resumeAt(b []byte) int { return max(0, len(b)-3) }

// parseHead parses a complete request head (as delimited by findHeadEnd).
// status is 0 for a request to answer, else the error status to answer
// with before closing the connection.
func parseHead(b []byte) (r request, status int) {
	n, r, status := scanHead(b)
	if n < 0 && status == 0 {
		return r, 400 // no end in a complete head: an empty request line
	}
	return r, status
}

// scanHead parses the request head at the start of b in one pass over its
// bytes, finding its end on the way: n is the length of the head, up to
// and including the empty line that ends it, or -1 (status 0) when b holds
// only part of it. status != 0 is an error status — or, for a head not yet
// complete, a reason to let findHeadEnd decide (the error may be past
// the limits). For b that does not start with CR or LF, a head that
// scanHead accepts ends where findHeadEnd says; on a complete head
// (b[:findHeadEnd(b)]) its status is that of the two-pass parser it
// replaces (FuzzHTTPParse checks both against it).
func scanHead(b []byte) (n int, r request, status int) {
	i := 0
	// Empty lines before the request line are ignored (RFC 9112 §2.2):
	// CRLF or LF, not a bare CR.
	for i < len(b) && (b[i] == '\n' || b[i] == '\r') {
		if b[i] == '\r' {
			if i+1 >= len(b) {
				return -1, r, 0
			}
			if b[i+1] != '\n' {
				return 0, r, 400 // a bare CR
			}
			i++
		}
		i++
	}
	// request-line = method SP request-target SP HTTP-version
	m := i
	for i < len(b) && tokenChars[b[i]] {
		i++
	}
	if i >= len(b) {
		return -1, r, 0
	}
	if i == m || b[i] != ' ' {
		return 0, r, 400
	}
	r.head = string(b[m:i]) == "HEAD"
	i++
	t := i
	for i < len(b) && targetChars[b[i]] {
		i++
	}
	if i >= len(b) {
		return -1, r, 0
	}
	if i == t || b[i] != ' ' {
		return 0, r, 400
	}
	i++
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		return -1, r, 0
	}
	v := b[i : i+j]
	i += j + 1
	if len(v) > 0 && v[len(v)-1] == '\r' {
		v = v[:len(v)-1]
	}
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return 0, r, 400 // a bare CR among them too
	}
	if v[5] != '1' {
		return 0, r, 505
	}
	http10 := v[7] == '0'
	r.http10 = http10

	var (
		host, te, cl, closeTok, keepTok bool
		chunkedLast, otherCoding        bool
	)
	r.length = -1
	for {
		if i >= len(b) {
			return -1, r, 0
		}
		switch b[i] {
		case '\n':
			n = i + 1
		case '\r':
			if i+1 >= len(b) {
				return -1, r, 0
			}
			if b[i+1] != '\n' {
				return 0, r, 400 // a bare CR
			}
			n = i + 2
		case ' ', '\t':
			return 0, r, 400 // obs-fold
		}
		if n > 0 {
			break
		}
		// field-line = field-name ":" OWS field-value OWS
		s := i
		for i < len(b) && tokenChars[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1, r, 0
		}
		if i == s || b[i] != ':' {
			return 0, r, 400 // whitespace before the colon among them
		}
		name := b[s:i]
		i++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		s = i
		for i < len(b) && valueChars[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1, r, 0
		}
		val := trimOWS(b[s:i])
		switch {
		case b[i] == '\n':
			i++
		case b[i] != '\r':
			return 0, r, 400 // a control character
		case i+1 >= len(b):
			return -1, r, 0
		case b[i+1] != '\n':
			return 0, r, 400 // a bare CR
		default:
			i += 2
		}
		switch len(name) {
		case 4:
			if eqFold(name, "host") {
				if host || !validHost(val) {
					return 0, r, 400
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
				k, ok := parseDecimal(val)
				if !ok || cl && k != r.length {
					return 0, r, 400
				}
				cl, r.length = true, k
			}
		case 17:
			if eqFold(name, "transfer-encoding") {
				// The codings of all Transfer-Encoding lines form one
				// list; chunked must be its last element, and only there.
				// A line that lists no coding at all (empty, commas) is
				// refused rather than ignored: a peer that reads it as
				// chunked, or as "no body", frames the stream otherwise.
				codings := 0
				for tok := range bytes.SplitSeq(val, []byte(",")) {
					tok = trimOWS(tok)
					if len(tok) == 0 {
						continue
					}
					if chunkedLast {
						return 0, r, 400 // a coding after chunked
					}
					codings++
					chunkedLast = eqFold(tok, "chunked")
					otherCoding = otherCoding || !chunkedLast
				}
				if codings == 0 {
					return 0, r, 400
				}
				te = true
			}
		}
	}
	switch {
	case !http10 && !host:
		return 0, r, 400
	case te && (http10 || cl || !chunkedLast):
		return 0, r, 400
	case te && otherCoding:
		// Framed by chunked, but coded with something else too, which
		// is not implemented (RFC 9112 §6.1).
		return 0, r, 501
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
	return n, r, 0
}

// validHost reports whether v is a valid Host field value (RFC 9110
// §7.2): empty, or one uri-host [ ":" port ] (RFC 3986 §3.2.2), where
// uri-host is an IP-literal in brackets or a non-empty reg-name
// (unreserved, pct-encoded, sub-delims). A comma, valid in a reg-name but
// never in a host name, is refused too: it is what two Host values
// combined into one look like.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	i := 0
	if v[0] == '[' {
		// IP-literal = "[" ( IPv6address / IPvFuture ) "]", checked
		// for its characters only.
		i = 1
		for i < len(v) && (hostChars[v[i]] || v[i] == ':') {
			i++
		}
		if i == 1 || i >= len(v) || v[i] != ']' {
			return false
		}
		i++
	} else {
		for i < len(v) && v[i] != ':' {
			switch {
			case hostChars[v[i]]:
				i++
			case v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]):
				i += 3
			default:
				return false
			}
		}
		if i == 0 {
			return false // no host, only a port
		}
	}
	if i == len(v) {
		return true
	}
	if v[i] != ':' {
		return false
	}
	// port = *DIGIT
	for _, c := range v[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// hostChars marks unreserved and sub-delims (RFC 3986 §2), the comma
// left out (see validHost).
var hostChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+;=" {
		t[c] = true
	}
	return t
}()

// trimCR drops the CR that ends line (a line without its LF), if there is
// one, and reports whether what is left is free of bare CRs.
func trimCR(line []byte) ([]byte, bool) {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, bytes.IndexByte(line, '\r') < 0
}

// tokenChars marks the characters of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// targetChars marks what a request-target may hold here: anything visible
// (obs-text included), no space or control character.
var targetChars = func() (t [256]bool) {
	for c := 0x21; c < 0x100; c++ {
		t[c] = c != 0x7f
	}
	return t
}()

// valueChars marks what a field value may hold: visible characters
// (obs-text included), space and tab; not CR, LF or another control
// character.
var valueChars = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != 0x7f
	}
	t['\t'] = true
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII string s, ignoring
// case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecimal parses 1*DIGIT of at most 18 digits (no sign, no list).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// chunked reads and discards a chunked body (RFC 9112 §7.1): chunk-size
// lines (extensions checked, then ignored), chunk data and its CRLF, the
// last chunk, and the trailer section (field lines checked, then ignored).
type chunked struct {
	state chunkState
	// left is what remains of the current chunk's data.
	left int64
	// total counts the body's data and chunk extension bytes (extensions
	// count so that a client cannot send megabytes of them for every
	// byte of body), trailer the trailer section's bytes.
	total   int64
	trailer int
}

type chunkState uint8

const (
	chunkSize chunkState = iota
	chunkData
	chunkDataEnd
	chunkTrailer
)

// maxChunkLine bounds a chunk-size line (with its extensions and its CR,
// without its LF), complete or not.
const maxChunkLine = 4096

// consume parses the chunked framing at the start of b and returns how
// many bytes it used. done: the body is over. status != 0: the body is
// malformed (400) or larger than maxBody or its trailers than maxHead
// (413, 431); the connection must be closed. When b ends in the middle of
// a line consume stops before the line: call it again with the line
// complete.
func (c *chunked) consume(b []byte, maxBody int64, maxHead int) (n int, done bool, status int) {
	for n < len(b) {
		switch c.state {
		case chunkSize:
			i := bytes.IndexByte(b[n:], '\n')
			if i < 0 {
				if len(b)-n > maxChunkLine {
					return n, false, 400
				}
				return n, false, 0
			}
			if i > maxChunkLine {
				return n, false, 400
			}
			line, ok := trimCR(b[n : n+i])
			if !ok {
				return n, false, 400 // a bare CR
			}
			size, ext, ok := parseChunkSize(line)
			if !ok {
				return n, false, 400
			}
			n += i + 1
			if c.total += size + int64(ext); c.total > maxBody {
				return n, false, 413
			}
			if size == 0 {
				c.state = chunkTrailer
			} else {
				c.left, c.state = size, chunkData
			}
		case chunkData:
			k := int(min(c.left, int64(len(b)-n)))
			n += k
			if c.left -= int64(k); c.left == 0 {
				c.state = chunkDataEnd
			}
		case chunkDataEnd:
			switch {
			case b[n] == '\n':
				n++
			case b[n] != '\r':
				return n, false, 400
			case n+1 >= len(b):
				return n, false, 0
			case b[n+1] != '\n':
				return n, false, 400
			default:
				n += 2
			}
			c.state = chunkSize
		case chunkTrailer:
			i := bytes.IndexByte(b[n:], '\n')
			if i < 0 {
				if c.trailer+len(b)-n > maxHead {
					return n, false, 431
				}
				return n, false, 0
			}
			line, ok := trimCR(b[n : n+i])
			if !ok {
				return n, false, 400
			}
			n += i + 1
			if c.trailer += i + 1; c.trailer > maxHead {
				return n, false, 431
			}
			if len(line) == 0 {
				*c = chunked{}
				return n, true, 0
			}
			if !validFieldLine(line) {
				return n, false, 400
			}
		}
	}
	return n, false, 0
}

// validFieldLine reports whether line (without its line end) is a
// field-line, as a trailer must be: field-name ":" OWS field-value OWS, the
// name a token, the value free of control characters; no obs-fold.
func validFieldLine(line []byte) bool {
	i := skipToken(line, 0)
	if i < 0 || i >= len(line) || line[i] != ':' {
		return false
	}
	for _, c := range line[i+1:] {
		if !valueChars[c] {
			return false
		}
	}
	return true
}

// parseChunkSize parses chunk-size [ chunk-ext ] (RFC 9112 §7.1.1): 1 to
// 15 hex digits, then extensions; ext is the length of the extensions.
func parseChunkSize(line []byte) (size int64, ext int, ok bool) {
	i := 0
	for ; i < len(line) && i < 16 && isHex(line[i]); i++ {
		c := line[i]
		var v byte
		switch {
		case c <= '9':
			v = c - '0'
		case c >= 'a':
			v = c - 'a' + 10
		default:
			v = c - 'A' + 10
		}
		size = size<<4 | int64(v)
	}
	if i == 0 || i > 15 || !validChunkExt(line[i:]) {
		return 0, 0, false
	}
	return size, len(line) - i, true
}

// validChunkExt reports whether b is a valid chunk-ext:
//
//	chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-name = token
//	chunk-ext-val  = token / quoted-string
//
// Nothing else may follow the chunk size: no trailing whitespace, no
// control characters.
func validChunkExt(b []byte) bool {
	i := 0
	for i < len(b) {
		i = skipBWS(b, i)
		if i >= len(b) || b[i] != ';' {
			return false
		}
		i = skipBWS(b, i+1)
		if i = skipToken(b, i); i < 0 {
			return false
		}
		if j := skipBWS(b, i); j < len(b) && b[j] == '=' {
			j = skipBWS(b, j+1)
			if j < len(b) && b[j] == '"' {
				i = skipQuoted(b, j)
			} else {
				i = skipToken(b, j)
			}
			if i < 0 {
				return false
			}
		}
	}
	return true
}

func skipBWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// skipToken returns the end of the token at b[i:], or -1 if there is none.
func skipToken(b []byte, i int) int {
	j := i
	for j < len(b) && tokenChars[b[j]] {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// skipQuoted returns the end of the quoted-string at b[i:] (b[i] is its
// opening quote), or -1 if it is malformed or unterminated (RFC 9110
// §5.6.4: qdtext, or a quoted-pair of a backslash and HTAB, SP, VCHAR or
// obs-text).
func skipQuoted(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i++; i >= len(b) || !valueChars[b[i]] {
				return -1
			}
		case !valueChars[c]:
			return -1
		}
	}
	return -1
}
