package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/mainrun"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestHTTPHello(t *testing.T) {
	// Ctrl-C when the test ends; run must return nil.
	out := mainrun.Serve(t, func(w io.Writer) error { return run("127.0.0.1:0", w) })
	url := strings.TrimPrefix(out.WaitLine(t, "httphello: listening on "), "httphello: listening on ")

	// Through net/http: keep-alive reuses one connection.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 3 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "Hello, World!" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}

	// Raw: three pipelined requests in one write, the last asking to
	// close; three answers in order, then the end of the stream.
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	c.Write([]byte(req + req + "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(hello) + string(hello) + string(goodbye); string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestWantsClose(t *testing.T) {
	for head, want := range map[string]bool{
		"GET / HTTP/1.1\r\nHost: x":                     false,
		"GET / HTTP/1.1\r\nConnection: close":           true,
		"GET / HTTP/1.1\r\nconnection: Close":           true,
		"GET / HTTP/1.0":                                true,
		"GET / HTTP/1.0\r\nConnection: keep-alive":      false,
		"POST / HTTP/1.1\r\nContent-Length: 5":          true,
		"POST / HTTP/1.1\r\nContent-Length: 0":          false,
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked": true,
	} {
		if got := wantsClose([]byte(head)); got != want {
			t.Errorf("%q: %v, want %v", head, got, want)
		}
	}
}
