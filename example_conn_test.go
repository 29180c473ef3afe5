package asyncdispatch_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// A line protocol written with bufio on net.Conn views: the server and the
// client are async procedures on one loop, each suspended in Read and
// Write while the other runs. No goroutine per connection.
func ExampleDispatcher_Conn() {
	d, _ := ad.NewDispatcher()
	defer d.Close()

	fd, _ := d.Listen("tcp", "localhost:0")
	ln, _ := d.Listener(fd)

	server := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		c, err := ln.AcceptConn()
		if err != nil {
			return ad.Void{}, err
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s\n", strings.ToUpper(sc.Text()))
		}
		return ad.Void{}, sc.Err()
	})
	client := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		c, err := ad.DialConn(co, "tcp", ln.Addr().String())
		if err != nil {
			return ad.Void{}, err
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for _, word := range []string{"hello", "loop"} {
			fmt.Fprintf(c, "%s\n", word)
			reply, err := r.ReadString('\n')
			if err != nil {
				return ad.Void{}, err
			}
			fmt.Print(reply)
		}
		return ad.Void{}, c.CloseWrite()
	})
	if _, err := ad.WaitFor(ad.All(client, server)); err != nil {
		fmt.Println("error:", err)
	}
	ln.Close()
	// Output:
	// HELLO
	// LOOP
}

// crypto/tls on the views, unmodified: tls.Server and tls.Client wrap
// them, and the handshake and the records run in async procedures.
// (testTLS is a self-signed certificate for localhost and a client
// configuration that trusts it.)
func ExampleDialConn_tls() {
	d, _ := ad.NewDispatcher()
	defer d.Close()
	serverConfig, clientConfig := testTLS()

	fd, _ := d.Listen("tcp", "localhost:0")
	ln, _ := d.Listener(fd)
	server := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		c, err := ln.AcceptConn()
		if err != nil {
			return ad.Void{}, err
		}
		tc := tls.Server(c, serverConfig)
		defer tc.Close()
		line, err := bufio.NewReader(tc).ReadString('\n')
		if err != nil {
			return ad.Void{}, err
		}
		_, err = fmt.Fprintf(tc, "secret received: %s", line)
		return ad.Void{}, err
	})
	client := ad.Async(d, func(co *ad.Coro) (string, error) {
		c, err := ad.DialConn(co, "tcp", ln.Addr().String())
		if err != nil {
			return "", err
		}
		tc := tls.Client(c, clientConfig)
		defer tc.Close()
		if _, err := fmt.Fprintf(tc, "the password\n"); err != nil {
			return "", err
		}
		state := tc.ConnectionState()
		fmt.Println("handshake complete:", state.HandshakeComplete)
		return bufio.NewReader(tc).ReadString('\n')
	})
	reply, err := ad.WaitFor(client)
	if err != nil {
		fmt.Println("error:", err)
	}
	fmt.Print(reply)
	ad.WaitFor(server)
	ln.Close()
	// Output:
	// handshake complete: true
	// secret received: the password
}
