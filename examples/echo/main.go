// Echo is a TCP echo server on one dispatcher: an async procedure accepts
// connections and starts an async procedure for each, which receives into
// its own buffer and sends the bytes back until the client hangs up.
//
//	go run ./examples/echo -addr 127.0.0.1:7000
//	nc 127.0.0.1 7000
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "address to listen on (port 0: any free port)")
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
	// Ctrl-C closes the dispatcher: every procedure unwinds, every socket
	// is closed, and RunForever returns.
	d.AddSignal(os.Interrupt, func(ad.AsyncFD) bool { d.Close(); return true })
	host, port, _ := ad.GetLocalAddr(ln)
	fmt.Fprintf(out, "echo: listening on %s\n", net.JoinHostPort(host, strconv.Itoa(port)))

	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for {
			conn, err := ad.Await(co, d.AcceptAddr(ln, ad.DefaultFlags, false))
			if err != nil {
				return ad.Void{}, err
			}
			fmt.Fprintf(out, "echo: connection from %s\n", conn.Address)
			// Not awaited: the connection runs concurrently.
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) { return echo(co, d, conn.Client, out) })
		}
	})
	return d.RunForever()
}

// echo serves one connection. (co.RecvInto and co.Send do the same as
// Await of d.RecvInto and d.Send without a future per call; `asyncdispatch
// serve echo` uses them and allocates nothing per message.)
func echo(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD, out io.Writer) (ad.Void, error) {
	defer d.CloseSocket(fd)
	buf := make([]byte, 4096)
	for {
		n, err := ad.Await(co, d.RecvInto(fd, buf, ad.DefaultFlags))
		if err == nil && n > 0 {
			// buf may be reused only once the send has finished.
			_, err = ad.Await(co, d.Send(fd, buf[:n], ad.DefaultFlags))
		}
		if err != nil || n == 0 { // an error, or the end of the stream
			if err != nil && !errors.Is(err, ad.ErrClosed) {
				fmt.Fprintf(out, "echo: %v\n", err)
			}
			return ad.Void{}, nil
		}
	}
}
