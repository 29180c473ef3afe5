package asyncdispatch_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// net/http's message code on the view, inside async procedures: a server
// written with http.ReadRequest and http.Response.Write, one procedure per
// connection, and net/http's own client (a goroutine, on net's sockets)
// talking to it: keep-alive, a chunked request body, Connection: close.
func TestConnHTTPReadRequestResponseWrite(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		ln := listenView(t, d, network, addr)
		accepted := 0
		srv := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			for {
				c, err := ln.AcceptConn()
				if err != nil {
					return ad.Void{}, nil // closed
				}
				accepted++
				ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
					defer c.Close()
					br, bw := bufio.NewReader(c), bufio.NewWriter(c)
					for {
						req, err := http.ReadRequest(br)
						if err != nil {
							return ad.Void{}, nil // io.EOF: the client is done
						}
						body, err := io.ReadAll(req.Body)
						if err != nil {
							return ad.Void{}, err
						}
						reply := fmt.Sprintf("%s %s %d %q", req.Method, req.URL.Path, len(body), req.TransferEncoding)
						resp := &http.Response{
							StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
							Request:       req,
							Header:        http.Header{"Content-Type": {"text/plain"}},
							ContentLength: int64(len(reply)),
							Body:          io.NopCloser(strings.NewReader(reply)),
							Close:         req.Close,
						}
						if err := resp.Write(bw); err != nil {
							return ad.Void{}, err
						}
						if err := bw.Flush(); err != nil {
							return ad.Void{}, err
						}
						if req.Close {
							return ad.Void{}, nil
						}
					}
				})
			}
		})
		url := "http://" + ln.Addr().String()
		// The client runs on a goroutine of its own; the test's goroutine
		// runs the loop until it is done.
		done := ad.NewExternalFuture[[]string](d, "client")
		go func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: waitLimit}
			var got []string
			do := func(req *http.Request, err error) {
				if err != nil {
					got = append(got, err.Error())
					return
				}
				resp, err := cl.Do(req)
				if err != nil {
					got = append(got, err.Error())
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = append(got, string(b))
			}
			for i := 0; i < 3; i++ {
				do(http.NewRequest("GET", fmt.Sprintf("%s/get/%d", url, i), nil))
			}
			// An unknown length: the client sends it chunked.
			do(http.NewRequest("POST", url+"/chunked", io.MultiReader(strings.NewReader("abc"), strings.NewReader("defgh"))))
			req, err := http.NewRequest("PUT", url+"/last", strings.NewReader(strings.Repeat("z", 100000)))
			if err == nil {
				req.Close = true
			}
			do(req, err)
			done.CompleteFrom(got)
		}()
		got := wait(t, done)
		want := []string{
			`GET /get/0 0 []`, `GET /get/1 0 []`, `GET /get/2 0 []`,
			`POST /chunked 8 ["chunked"]`, `PUT /last 100000 []`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		closeAll(t, d, ln)
		wait(t, srv)
		if accepted != 1 {
			t.Fatalf("%d connections for 5 requests, want 1 (keep-alive)", accepted)
		}
	})
}
