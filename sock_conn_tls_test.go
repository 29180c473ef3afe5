package asyncdispatch_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// crypto/tls on the view, inside async procedures: many handshakes and
// record streams at once on one loop, and the peers that misbehave.

// testTLS is a server and a client configuration around a self-signed
// ECDSA certificate for localhost, 127.0.0.1 and ::1, made once.
var testTLS = sync.OnceValues(func() (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "asyncdispatch test"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	srv := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	cli := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return srv, cli
})

// tlsEchoServer accepts on ln until it is closed and serves each
// connection in a procedure of its own: a TLS handshake within
// handshakeLimit, then every line echoed back until the peer closes. It
// returns the handshake errors it saw (on errs) and a future that
// finishes when the accept loop ends.
func tlsEchoServer(d *ad.Dispatcher, ln *ad.Listener, handshakeLimit time.Duration, errs chan<- error) *ad.Future[int] {
	srvCfg, _ := testTLS()
	return ad.Async(d, func(co *ad.Coro) (int, error) {
		n := 0
		for {
			c, err := ln.AcceptConn()
			if err != nil {
				return n, nil // closed
			}
			n++
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				defer c.Close()
				tc := tls.Server(c, srvCfg)
				c.SetDeadline(time.Now().Add(handshakeLimit))
				if err := tc.Handshake(); err != nil {
					errs <- err
					return ad.Void{}, nil
				}
				c.SetDeadline(time.Time{})
				r := bufio.NewReader(tc)
				for {
					line, err := r.ReadBytes('\n')
					if err != nil {
						if err != io.EOF {
							errs <- fmt.Errorf("after the handshake: %w", err)
						}
						return ad.Void{}, nil
					}
					if _, err := tc.Write(line); err != nil {
						errs <- err
						return ad.Void{}, nil
					}
				}
			})
		}
	})
}

// tlsClient dials ln, shakes hands and echoes msgs, in the procedure on
// co.
func tlsClient(co *ad.Coro, network, addr string, msgs [][]byte) error {
	_, cliCfg := testTLS()
	c, err := ad.DialConn(co, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(c, cliCfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	r := bufio.NewReader(tc)
	for i, m := range msgs {
		if _, err := tc.Write(m); err != nil {
			return err
		}
		got, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
		if !bytes.Equal(got, m) {
			return fmt.Errorf("reply %d: %d bytes, not the %d sent", i, len(got), len(m))
		}
	}
	if err := tc.CloseWrite(); err != nil {
		return err
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("after close_notify: %v, want io.EOF", err)
	}
	return nil
}

// echoMessages are lines of many sizes, the largest spanning several TLS
// records (16 KiB each).
func echoMessages() [][]byte {
	var msgs [][]byte
	for _, n := range []int{1, 63, 1000, 16383, 16384, 40000, 5} {
		m := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		msgs = append(msgs, append(m, '\n'))
	}
	return msgs
}

// Fifty TLS connections at once on one loop: handshakes, records both
// ways, close_notify; every client and the server are async procedures.
func TestConnTLSManyConnections(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		ln := listenView(t, d, network, addr)
		errs := make(chan error, 100)
		srv := tlsEchoServer(d, ln, waitLimit, errs)
		const n = 50
		clients := make([]*ad.Future[ad.Void], n)
		for i := range clients {
			clients[i] = ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				return ad.Void{}, tlsClient(co, network, ln.Addr().String(), echoMessages())
			})
		}
		wait(t, ad.All(clients...))
		closeAll(t, d, ln)
		if got := wait(t, srv); got != n {
			t.Fatalf("server accepted %d connections", got)
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	})
}

// Peers that misbehave end with an error on their own connection only:
// one sends garbage instead of a ClientHello, one stalls in the middle of
// it (the server's deadline ends that handshake), one closes in the
// middle of a record after the handshake. Meanwhile good clients go on.
func TestConnTLSMisbehavingPeers(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		errs := make(chan error, 10)
		// The stalled handshake's limit: long enough for the good
		// clients to be served while it waits, on a slow machine too.
		const limit = time.Second
		srv := tlsEchoServer(d, ln, limit, errs)
		addr := ln.Addr().String()
		raw := func(co *ad.Coro, send []byte, then func(c *ad.Conn) error) error {
			c, err := ad.DialConn(co, "tcp4", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write(send); err != nil {
				return err
			}
			return then(c)
		}
		garbage := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			return ad.Void{}, raw(co, []byte("GET / HTTP/1.0\r\n\r\n"), func(c *ad.Conn) error {
				_, err := io.Copy(io.Discard, c) // until the server gives up
				return err
			})
		})
		stall := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			// A handshake record header announcing 512 bytes, then 3.
			return ad.Void{}, raw(co, []byte{22, 3, 1, 2, 0, 1, 0, 1}, func(c *ad.Conn) error {
				_, err := io.Copy(io.Discard, c)
				return err
			})
		})
		// The good clients run while the stalled handshake waits.
		good := make([]*ad.Future[ad.Void], 5)
		for i := range good {
			good[i] = ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				return ad.Void{}, tlsClient(co, "tcp4", addr, echoMessages())
			})
		}
		wait(t, ad.All(good...))
		if stall.Finished() {
			t.Fatal("the good clients were served only after the stalled handshake ended")
		}
		wait(t, garbage)
		wait(t, stall)
		midRecord := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			_, cliCfg := testTLS()
			c, err := ad.DialConn(co, "tcp4", addr)
			if err != nil {
				return ad.Void{}, err
			}
			defer c.Close()
			tc := tls.Client(c, cliCfg)
			if err := tc.Handshake(); err != nil {
				return ad.Void{}, err
			}
			// An application-data record header announcing 100 bytes,
			// 10 of them, and the end of the stream.
			if _, err := c.Write(append([]byte{23, 3, 3, 0, 100}, make([]byte, 10)...)); err != nil {
				return ad.Void{}, err
			}
			return ad.Void{}, c.CloseWrite()
		})
		wait(t, midRecord)
		closeAll(t, d, ln)
		wait(t, srv)
		// The connections' procedures may still be finishing: run the
		// loop until all three have reported.
		var got []error
		end := time.Now().Add(waitLimit)
		for len(got) < 3 {
			select {
			case err := <-errs:
				got = append(got, err)
				continue
			default:
			}
			if time.Now().After(end) {
				t.Fatalf("the server reported %d errors: %v", len(got), got)
			}
			d.Poll(10 * time.Millisecond)
		}
		var timeouts, unexpectedEOF, other int
		for _, err := range got {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				timeouts++
			case errors.Is(err, io.ErrUnexpectedEOF):
				unexpectedEOF++
			default:
				other++ // the garbage: "first record does not look like a TLS handshake"
			}
		}
		if timeouts != 1 || unexpectedEOF != 1 || other != 1 {
			t.Fatalf("server errors %v: want one timeout (the stall), one unexpected EOF (mid-record), one handshake error (the garbage)", got)
		}
	})
}
