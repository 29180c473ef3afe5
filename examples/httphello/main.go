// HTTPHello answers every HTTP/1.1 request with "Hello, World!": one async
// procedure per connection, keep-alive, and pipelining (every complete
// request in the buffer is answered, in order, with one send). It is the
// shape of a server, not a complete one: request bodies are not read, so
// a request with a body closes the connection (cmd/asyncdispatch's
// `serve http`, in internal/server, is the complete version).
//
//	go run ./examples/httphello -addr 127.0.0.1:8080
//	curl -v http://127.0.0.1:8080/
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

const (
	maxHead = 8192             // bytes of request head; more is answered 431
	idle    = 60 * time.Second // a connection silent this long is closed
)

var (
	hello    = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")
	goodbye  = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
	tooLarge = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	flag.Parse()
	if err := run(*addr, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves until Ctrl-C.
func run(addr string, out io.Writer) error {
	d, err := ad.NewDispatcher()
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := d.Listen("tcp", addr)
	if err != nil {
		return err
	}
	d.AddSignal(os.Interrupt, func(ad.AsyncFD) bool { d.Close(); return true })
	host, port, _ := ad.GetLocalAddr(ln)
	fmt.Fprintf(out, "httphello: listening on http://%s/\n", net.JoinHostPort(host, strconv.Itoa(port)))

	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for {
			fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
			if err != nil {
				return ad.Void{}, err
			}
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) { return serve(co, d, fd) })
		}
	})
	return d.RunForever()
}

// serve answers the requests of one connection.
func serve(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD) (ad.Void, error) {
	defer d.CloseSocket(fd)
	buf := make([]byte, maxHead)
	var out []byte
	n := 0 // buf[:n] holds received bytes not answered yet
	for {
		// Answer every complete request head in the buffer.
		out = out[:0]
		closing := false
		for !closing {
			end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			closing = wantsClose(buf[:end])
			if closing {
				out = append(out, goodbye...)
			} else {
				out = append(out, hello...)
			}
			n = copy(buf, buf[end+4:n])
		}
		if n == len(buf) {
			out, closing = append(out, tooLarge...), true
		}
		if len(out) > 0 {
			if _, err := ad.Await(co, d.Send(fd, out, ad.DefaultFlags)); err != nil {
				return ad.Void{}, nil
			}
		}
		if closing {
			return ad.Void{}, nil
		}
		k, err := ad.Await(co, ad.Timeout(d.RecvInto(fd, buf[n:], ad.DefaultFlags), idle))
		if err != nil || k == 0 { // an error, the end of the stream, or idle too long
			return ad.Void{}, nil
		}
		n += k
	}
}

// wantsClose reports whether the client asks for the connection to be
// closed after this request: HTTP/1.0 unless it says keep-alive,
// "Connection: close", or a body this server does not read.
func wantsClose(head []byte) bool {
	lines := bytes.Split(head, []byte("\r\n"))
	keepAlive := bytes.HasSuffix(lines[0], []byte(" HTTP/1.1"))
	for _, line := range lines[1:] {
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = bytes.EqualFold(value, []byte("keep-alive")) ||
				keepAlive && !bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Content-Length")) && !bytes.Equal(value, []byte("0")),
			bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return true
		}
	}
	return !keepAlive
}
