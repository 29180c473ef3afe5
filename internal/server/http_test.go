package server

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func TestParseHead(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: x\r\n"
	for _, tc := range []struct {
		head   string
		status int
		want   request
	}{
		{get + "\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\nHost: x\n\n", 0, request{keepAlive: true}},
		{"\r\n\r\n" + get + "\r\n", 0, request{keepAlive: true}},
		{"HEAD /a?b=c HTTP/1.1\r\nhost: x\r\n\r\n", 0, request{head: true, keepAlive: true}},
		{get + "Connection: close\r\n\r\n", 0, request{}},
		{get + "Connection: Upgrade, CLOSE\r\n\r\n", 0, request{}},
		{get + "connection: keep-alive\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.0\r\n\r\n", 0, request{http10: true}},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, request{http10: true, keepAlive: true}},
		{"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, request{http10: true}},
		{"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 0, request{keepAlive: true}},
		{get + "Content-Length: 5\r\n\r\n", 0, request{keepAlive: true, body: bodyLength, length: 5}},
		{get + "Content-Length: 0\r\n\r\n", 0, request{keepAlive: true}},
		{get + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, request{keepAlive: true, body: bodyLength, length: 5}},
		{get + "Transfer-Encoding: chunked\r\n\r\n", 0, request{keepAlive: true, body: bodyChunked}},
		{get + "Transfer-Encoding: , Chunked,\r\n\r\n", 0, request{keepAlive: true, body: bodyChunked}},
		{get + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 0, request{keepAlive: true, expect100: true, body: bodyLength, length: 3}},
		{get + "X-Empty:\r\nX-Tab:\tv\t\r\n\r\n", 0, request{keepAlive: true}},
		{"\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: \r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: 127.0.0.1:\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n", 0, request{keepAlive: true}},
		{"GET / HTTP/1.1\r\nHost: a%2Db_c~d!$&'()*+;=\r\n\r\n", 0, request{keepAlive: true}},

		{"GET / HTTP/1.1\r\n\r\n", 400, request{}}, // no Host
		{get + "Host: y\r\n\r\n", 400, request{}},  // two Hosts
		{get + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, request{}},
		{get + "Content-Length: -1\r\n\r\n", 400, request{}},
		{get + "Content-Length: 5, 5\r\n\r\n", 400, request{}},
		{get + "Content-Length: 1234567890123456789\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: gzip\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, request{}}, // only chunked is implemented
		{get + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501, request{}},
		{get + "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n", 400, request{}},
		// A Transfer-Encoding that lists no coding: refused, not ignored.
		{get + "Transfer-Encoding:\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: ,\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: , ,\t\r\nContent-Length: 5\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n\r\n", 400, request{}},
		// Only CRLF or LF before the request line, not a bare CR.
		{"\r\r" + get + "\r\n", 400, request{}},
		{"\r" + get + "\r\n", 400, request{}},
		{"\r\n\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, request{}},
		// A Host is one uri-host[:port].
		{"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, request{}},
		{get + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, request{}},
		{get + "X: a\r\n b\r\n\r\n", 400, request{}}, // obs-fold
		{get + "X : a\r\n\r\n", 400, request{}},
		{get + ": a\r\n\r\n", 400, request{}},
		{get + "X: a\rb\r\n\r\n", 400, request{}}, // bare CR
		{get + "X: a\x00b\r\n\r\n", 400, request{}},
		{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, request{}},
		{"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, request{}},
		{"GET /\r\n\r\n", 400, request{}}, // HTTP/0.9
		{"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, request{}},
		{"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, request{}},
		{"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400, request{}},
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, request{}},
	} {
		b := []byte(tc.head)
		e := findHeadEnd(b, 0)
		if e != len(b) {
			t.Errorf("%q: head ends at %d, want %d", tc.head, e, len(b))
			continue
		}
		r, status := parseHead(b[:e])
		if status != tc.status {
			t.Errorf("%q: status %d, want %d", tc.head, status, tc.status)
		} else if status == 0 && r != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.head, r, tc.want)
		}
	}
}

// findHeadEnd finds the same end whether the head arrives at once or a
// byte at a time (resuming where the last search gave up).
func TestFindHeadEndIncremental(t *testing.T) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT",
		"GET / HTTP/1.1\nHost: x\n\nNEXT",
		"\r\n\nGET / HTTP/1.1\r\nHost: x\n\r\nNEXT",
		"GET / HTTP/1.1\r\nA: b\r\n\r\r\n\r\nNEXT", // a bare CR line is not the end
	} {
		want := findHeadEnd([]byte(s), 0)
		if want != strings.Index(s, "NEXT") {
			t.Errorf("%q: whole: %d", s, want)
		}
		from := 0
		got := -1
		for n := 1; n <= len(s) && got < 0; n++ {
			got = findHeadEnd([]byte(s[:n]), from)
			from = resumeAt([]byte(s[:n]))
		}
		if got != want {
			t.Errorf("%q: a byte at a time: %d, want %d", s, got, want)
		}
	}
}

func TestChunked(t *testing.T) {
	for _, tc := range []struct {
		body   string
		n      int // bytes of the body (the rest is the next request)
		status int
	}{
		{"5\r\nhello\r\n0\r\n\r\nNEXT", -1, 0},
		{"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT", -1, 0},
		{"5\nhello\n0\n\nNEXT", -1, 0},
		{"0\r\n\r\nNEXT", -1, 0},
		{"g\r\n", 0, 400},
		{"5\r\nhelloX\r\n", 0, 400},
		{"1234567890abcdef0\r\n", 0, 400},
		{"100001\r\n", 0, 413},
		{"5x\r\nhello\r\n", 0, 400},
		// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS token / quoted-string ] )
		{"5 ; a = b ;c;d=\"q \\\" ;\"\r\nhello\r\n0;last\r\n\r\nNEXT", -1, 0},
		{"5;a=\"\"\t;b\r\nhello\r\n0\r\n\r\nNEXT", -1, 0},
		{"5;\x00\r\nhello\r\n", 0, 400},
		{"5;a=\x01\r\nhello\r\n", 0, 400},
		{"5;a\x7f\r\nhello\r\n", 0, 400},
		{"5;garbage here\r\nhello\r\n", 0, 400},
		{"5;=b\r\nhello\r\n", 0, 400},
		{"5;\r\nhello\r\n", 0, 400},
		{"5;a=\r\nhello\r\n", 0, 400},
		{"5;a=\"open\r\nhello\r\n", 0, 400},
		{"5;a=\"x\"y\r\nhello\r\n", 0, 400},
		{"5;a=b c\r\nhello\r\n", 0, 400},
		{"5 \r\nhello\r\n", 0, 400},
		{"5 x\r\nhello\r\n", 0, 400},
		{"5;a \r\nhello\r\n", 0, 400},
		// Trailers are field lines.
		{"0\r\nA: b\r\nC-d:\r\nE:\t f g \r\n\r\nNEXT", -1, 0},
		{"0\r\nT: v\x00\r\n\r\n", 0, 400},
		{"0\r\nT: v\r\n folded\r\n\r\n", 0, 400},
		{"0\r\nno colon\r\n\r\n", 0, 400},
		{"0\r\nT : v\r\n\r\n", 0, 400},
		{"0\r\n: v\r\n\r\n", 0, 400},
		// The 4 KiB bound of a chunk line holds for a complete line too.
		{"1;a=" + strings.Repeat("b", 6000) + "\r\nx\r\n0\r\n\r\n", 0, 400},
		{"1;a=" + strings.Repeat("b", maxChunkLine-5) + "\r\nx\r\n0\r\n\r\nNEXT", -1, 0},
		{"1;a=" + strings.Repeat("b", maxChunkLine-4) + "\r\nx\r\n0\r\n\r\n", 0, 400},
	} {
		var c chunked
		n, done, status := c.consume([]byte(tc.body), 1<<20, 1024)
		if status != tc.status {
			t.Errorf("%.80q: status %d, want %d", tc.body, status, tc.status)
			continue
		}
		if status != 0 {
			continue
		}
		want := strings.Index(tc.body, "NEXT")
		if !done || n != want {
			t.Errorf("%q: consumed %d done %v, want %d done", tc.body, n, done, want)
		}
		// The same, arriving a byte at a time: consume is called with
		// what is left unconsumed plus the next byte.
		c = chunked{}
		buf, off, total := []byte(tc.body), 0, 0
		done = false
		for end := 1; end <= len(buf) && !done; end++ {
			n, done, status = c.consume(buf[off:end], 1<<20, 1024)
			if status != 0 {
				t.Fatalf("%q: status %d at byte %d", tc.body, status, end)
			}
			off += n
			total += n
		}
		if !done || total != want {
			t.Errorf("%q: a byte at a time: consumed %d done %v, want %d", tc.body, total, done, want)
		}
	}
}

// Chunk extensions count against the body limit: without that, a client
// sends 4 KiB of extensions for every byte of body, unbounded.
func TestChunkExtCountsAgainstBodyLimit(t *testing.T) {
	chunk := "1;" + strings.Repeat("e", 4000) + "\r\nx\r\n"
	body := []byte(strings.Repeat(chunk, 100) + "0\r\n\r\n")
	var c chunked
	n, done, status := c.consume(body, 100000, 1024)
	if status != 413 || done {
		t.Fatalf("%d chunks of 1 byte and 4000 bytes of extensions, limit 100000: status %d done %v, want 413", 100, status, done)
	}
	if n > 30*len(chunk) {
		t.Fatalf("refused after %d bytes, want about %d", n, 25*len(chunk))
	}
}

// Every complete request in the buffer is answered, in order, in one
// batch: the answers to one read go out with one Send.
func TestPipelineOneBatch(t *testing.T) {
	h := &httpServer{maxHead: 8192, maxBody: 1 << 20, maxBuf: 9216}
	h.build(time.Now())
	s := &Server{}
	reqs := strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5) +
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		"GET /ignored HTTP/1.1\r\nHost: x\r\n\r\n"
	hc := &httpConn{h: h, s: s, c: &conn{}, buf: []byte(reqs), end: len(reqs)}
	if step := hc.process(); step != closeNow {
		t.Fatalf("step %d, want closeNow", step)
	}
	want := strings.Repeat(string(h.resp[0][connDefault]), 6) + string(h.resp[1][connDefault]) + string(h.resp[0][connClose])
	if string(hc.out) != want {
		t.Fatalf("batch:\n%s\nwant:\n%s", hc.out, want)
	}
}

// exchange writes req and returns the responses read (parsed with
// net/http), until n have been read.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, req string, n int, method string) []*http.Response {
	t.Helper()
	if req != "" {
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading response %d of %d: %v", len(out)+1, n, err)
		}
		body := make([]byte, 64)
		k, _ := resp.Body.Read(body)
		resp.Body.Close()
		resp.Status = fmt.Sprintf("%d %s", resp.StatusCode, body[:k])
		out = append(out, resp)
	}
	return out
}

func must[T any](v T, _ error) T { return v }

func startHTTP(t *testing.T, cfg HTTPConfig) *running {
	return start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) { return ServeHTTP(d, ln, cfg) })
}

func TestHTTP(t *testing.T) {
	r := startHTTP(t, HTTPConfig{MaxHeader: 1024, MaxBody: 1000})
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	ok := "200 " + Body
	// allOK fails t unless every one of resps is answered ok.
	allOK := func(t *testing.T, resps []*http.Response) {
		t.Helper()
		for i, resp := range resps {
			if resp.Status != ok {
				t.Fatalf("response %d: %q", i, resp.Status)
			}
		}
	}

	t.Run("keep-alive", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		for range 3 {
			resp := exchange(t, c, br, get, 1, "GET")[0]
			if resp.Status != ok || resp.Header.Get("Content-Type") != "text/plain" || resp.Close || resp.Header.Get("Date") == "" {
				t.Fatalf("response %q %v close=%v", resp.Status, resp.Header, resp.Close)
			}
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		req := strings.Repeat(get, 50) + "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
			"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get
		allOK(t, exchange(t, c, br, req, 53, "GET"))
	})
	t.Run("split", func(t *testing.T) {
		// A request arriving in pieces, the blank line split too.
		c := r.dial(t)
		br := newReader(c)
		for _, part := range []string{"GET / HT", "TP/1.1\r\nHo", "st: x\r\n\r", "\n"} {
			c.Write([]byte(part))
			time.Sleep(time.Millisecond) // pacing: make the pieces separate reads
		}
		if resp := exchange(t, c, br, "", 1, "GET")[0]; resp.Status != ok {
			t.Fatal(resp.Status)
		}
	})
	t.Run("empty-lines-first", func(t *testing.T) {
		// Empty lines before a request line (the two-step path), between
		// whole heads (the one-pass path), one batch.
		c := r.dial(t)
		br := newReader(c)
		req := get + "\r\n\n" + get + get + "\r\n" + get
		allOK(t, exchange(t, c, br, req, 4, "GET"))
	})
	t.Run("refused-after-answered", func(t *testing.T) {
		// A malformed head after good ones in the same read: the good
		// ones are answered, then the refusal, then the close.
		c := r.dial(t)
		br := newReader(c)
		resps := exchange(t, c, br, get+get+"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n"+get, 3, "GET")
		allOK(t, resps[:2])
		if resps[2].StatusCode != 400 || !resps[2].Close {
			t.Fatalf("third: %q close=%v, want 400 and close", resps[2].Status, resps[2].Close)
		}
		c.(*net.TCPConn).CloseWrite()
		if rest := waitEOF(t, c); rest != "" || br.Buffered() > 0 {
			t.Fatalf("answered after the refusal: %q", rest)
		}
	})
	t.Run("head", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		resp := exchange(t, c, br, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"+get, 1, "HEAD")[0]
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(Body)) {
			t.Fatalf("HEAD: %q length %d", resp.Status, resp.ContentLength)
		}
		if resp := exchange(t, c, br, "", 1, "GET")[0]; resp.Status != ok {
			t.Fatalf("after HEAD: %q (a HEAD response must have no body)", resp.Status)
		}
	})
	t.Run("head-refused", func(t *testing.T) {
		// A refusal of a HEAD request has no body, whether the head,
		// its size or its body is refused.
		for _, req := range []string{
			"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n",
			"\r\nHEAD / HTTP/2.0\r\nHost: x\r\n\r\n",
			"HEAD /" + strings.Repeat("a", 2000),
			"HEAD / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n",
			"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
			"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n0\r\n\r\n",
		} {
			c := r.dial(t)
			br := newReader(c)
			resp := exchange(t, c, br, req, 1, "HEAD")[0]
			if resp.StatusCode < 400 || !resp.Close {
				t.Fatalf("%.40q: %q close=%v, want a refusal and close", req, resp.Status, resp.Close)
			}
			c.(*net.TCPConn).CloseWrite()
			if rest := waitEOF(t, c); rest != "" || br.Buffered() > 0 {
				t.Fatalf("%.40q: %d %q after the head of the refusal of a HEAD request", req, resp.StatusCode, rest+string(must(br.Peek(br.Buffered()))))
			}
		}
	})
	t.Run("close", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		resp := exchange(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"+get, 1, "GET")[0]
		if resp.Status != ok || !resp.Close {
			t.Fatalf("%q close=%v", resp.Status, resp.Close)
		}
		if rest := waitEOF(t, c); rest != "" || br.Buffered() > 0 {
			t.Fatalf("answered after Connection: close: %q", rest)
		}
	})
	t.Run("http10", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		resp := exchange(t, c, br, "GET / HTTP/1.0\r\n\r\n", 1, "GET")[0]
		if resp.Status != ok || !resp.Close {
			t.Fatalf("%q close=%v", resp.Status, resp.Close)
		}
		waitEOF(t, c)

		c = r.dial(t)
		br = newReader(c)
		for range 2 {
			resp := exchange(t, c, br, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, "GET")[0]
			if resp.Status != ok || resp.Close || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("%q close=%v %v", resp.Status, resp.Close, resp.Header)
			}
		}
	})
	t.Run("expect-100", func(t *testing.T) {
		c := r.dial(t)
		br := newReader(c)
		c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"))
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("%q %v", line, err)
		}
		br.ReadString('\n')
		if resp := exchange(t, c, br, "body", 1, "POST")[0]; resp.Status != ok {
			t.Fatal(resp.Status)
		}
	})
	for _, tc := range []struct{ name, req, status string }{
		{"431", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", "431"},
		{"431-unterminated", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000), "431"},
		{"414", "GET /" + strings.Repeat("a", 2000), "414"},
		{"413", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", "413"},
		{"413-chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", "413"},
		{"400", "GARBAGE\r\n\r\n", "400"},
		{"400-smuggle", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
		{"505", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", "505"},
		{"501-gzip-chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"},
		{"400-empty-te", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"400-bare-cr-first", "\r\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"400-host-list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", "400"},
		{"400-host-path", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", "400"},
		{"400-chunk-ext", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n0\r\n\r\n", "400"},
		{"400-chunk-line", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=" + strings.Repeat("b", 6000) + "\r\nabc\r\n0\r\n\r\n", "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The refusal is read in full even though the client has
			// sent more than the server read (the server lingers
			// instead of resetting the connection).
			c := r.dial(t)
			br := newReader(c)
			resp := exchange(t, c, br, tc.req+strings.Repeat("more ", 1000), 1, "GET")[0]
			if !strings.HasPrefix(resp.Status, tc.status+" "+tc.status) || !resp.Close {
				t.Fatalf("%q close=%v, want %s and close", resp.Status, resp.Close, tc.status)
			}
			c.(*net.TCPConn).CloseWrite()
			waitEOF(t, c)
		})
	}
	r.waitConns(0)
}

// Idle connections are dropped after the timeout, a slow-loris client
// trickling a head too, while a client that completes requests is kept.
func TestHTTPIdleTimeout(t *testing.T) {
	const idle = 150 * time.Millisecond
	r := startHTTP(t, HTTPConfig{IdleTimeout: idle})
	silent, loris, busy := r.dial(t), r.dial(t), r.dial(t)
	t0 := time.Now()
	closed := make(chan string, 2)
	go func() { waitEOF(t, silent); closed <- "silent" }()
	go func() {
		// A byte of a never-ending head every idle/5 (pacing).
		for i := 0; ; i++ {
			if _, err := loris.Write([]byte("GET / HTTP/1.1\r\nX: "[i%8:][:1])); err != nil {
				break
			}
			time.Sleep(idle / 5)
		}
		closed <- "loris"
	}()
	br := newReader(busy)
	for len(closed) < 2 {
		if time.Since(t0) > limit {
			t.Fatal("idle connections were not dropped")
		}
		time.Sleep(idle / 5) // pacing
		if resp := exchange(t, busy, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")[0]; resp.Status != "200 "+Body {
			t.Fatal(resp.Status)
		}
	}
	if el := time.Since(t0); el < idle {
		t.Fatalf("dropped after %v, before the idle timeout %v", el, idle)
	}
	r.waitConns(1)
}

// A client pipelining without pause does not keep the loop to itself:
// another client is still answered promptly.
func TestHTTPFairness(t *testing.T) {
	r := startHTTP(t, HTTPConfig{})
	flooder, other := r.dial(t), r.dial(t)
	stop := flood(flooder, []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2000)))
	defer stop()
	time.Sleep(50 * time.Millisecond) // let the flood build up (pacing)
	br := newReader(other)
	t0 := time.Now()
	for range 5 {
		if resp := exchange(t, other, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")[0]; resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Fatalf("5 requests took %v during the flood", el)
	}
}

// MaxBody < 0 refuses every body; requests without one are served.
func TestHTTPNoBody(t *testing.T) {
	r := startHTTP(t, HTTPConfig{MaxBody: -1})
	c := r.dial(t)
	br := newReader(c)
	if resp := exchange(t, c, br, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1, "POST")[0]; resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if resp := exchange(t, c, br, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 1, "POST")[0]; resp.StatusCode != 413 {
		t.Fatal(resp.Status)
	}
}

// Steady state allocates nothing per request, one at a time or pipelined:
// the connection procedure uses the Coro forms of WaitReadable, RecvInto
// and Send, pooled read and batch buffers and prebuilt responses (made
// anew only when the Date changes, once a second); the client here
// allocates nothing either.
func TestHTTPAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	d, _, fd := loopSetup(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
		return ServeHTTP(d, ln, HTTPConfig{IdleTimeout: time.Minute})
	})
	buf := make([]byte, 64<<10)
	for _, pipeline := range []int{1, 16} {
		req := []byte(strings.Repeat(benchRequest, pipeline))
		// Every response ends with the body; count them.
		round := roundTrips(t, d, fd, req, buf, func(got []byte) bool { return bytes.Count(got, []byte(Body)) >= pipeline })
		per := mallocsPerRound(round) / float64(pipeline)
		t.Logf("pipeline %d: %.4f allocations per request, client and server together", pipeline, per)
		if per > 0.01 {
			t.Fatalf("pipeline %d: %.4f allocations per request; want none in steady state", pipeline, per)
		}
	}
}
