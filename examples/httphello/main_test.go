package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestHTTPHello(t *testing.T) {
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run("127.0.0.1:0", w) }()
	first, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(first, "httphello: listening on "))
	defer func() {
		syscall.Kill(os.Getpid(), syscall.SIGINT) // Ctrl-C
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

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
