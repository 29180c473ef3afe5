package asyncdispatch_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// raiseNOFILE makes sure the process may open need descriptors, raising
// the soft (and, with the privilege, the hard) limit for the test; it
// skips the test when that is impossible.
func raiseNOFILE(t *testing.T, need uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur >= need {
		return
	}
	rl := old
	rl.Cur = need
	if rl.Max < need {
		rl.Max = need
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("needs %d descriptors; RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v", need, old.Cur, old.Max, err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// echoOnce serves one connection with callbacks only (no coroutine): it
// echoes what it reads until end of file, then closes the socket and calls
// done.
func echoOnce(d *ad.Dispatcher, fd ad.AsyncFD, done func()) {
	buf := make([]byte, 64)
	var step func()
	step = func() {
		rf := d.RecvInto(fd, buf, ad.DefaultFlags)
		rf.AddCallback(func() {
			n, err := rf.Read()
			if err != nil || n == 0 {
				d.CloseSocket(fd)
				done()
				return
			}
			d.Send(fd, buf[:n], ad.DefaultFlags).AddCallback(step)
		})
	}
	step()
}

const scaleChildEnv = "ASYNCDISPATCH_TEST_SCALE_PORT"

// 10,000 connections open at once on one dispatcher, each exchanging a
// message, then closed. The client ends live in a child process (the test
// binary again, with a dispatcher of its own): both ends in one process
// would need 20,000 descriptors, more than a common hard limit.
func TestTenThousandConnections(t *testing.T) {
	const n = 10000
	if port := os.Getenv(scaleChildEnv); port != "" {
		scaleClients(t, n, port)
		return
	}
	raiseNOFILE(t, n+512)
	withD(t, func(d *ad.Dispatcher) {
		start := time.Now()
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		defer d.CloseSocket(ln)
		closed := 0
		allClosed := ad.NewFuture[ad.Void](d, "allClosed")
		server := async(d, func(co *ad.Coro) (int, error) {
			for i := 0; i < n; i++ {
				fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
				if err != nil {
					return i, err
				}
				echoOnce(d, fd, func() {
					if closed++; closed == n {
						allClosed.Complete(ad.Void{})
					}
				})
			}
			return n, nil
		})
		cmd := exec.Command(os.Args[0], "-test.run=^TestTenThousandConnections$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), scaleChildEnv+"="+strconv.Itoa(port))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		defer func() {
			cmd.Process.Kill()
			<-exited
		}()
		child := ad.NewFuture[ad.Void](d, "child")
		go func() {
			err := cmd.Wait()
			close(exited)
			d.CallSoonThreadSafe(func() {
				if err != nil {
					child.Fail(err)
				} else {
					child.Complete(ad.Void{})
				}
			})
		}()
		childFailed := func(what string, err error) {
			t.Helper()
			<-exited
			t.Fatalf("%s: %v\nchild output:\n%s", what, err, out.String())
		}
		// Until every connection is accepted, none is closed: the clients
		// close only after every echo came back.
		if _, err := ad.WaitFor(ad.Timeout(ad.Or(server, child), waitLimit)); err != nil || !server.Finished() {
			childFailed("accepting", err)
		}
		if got := d.RegisteredDescriptors(); got != n+1 {
			t.Fatalf("%d descriptors registered with all accepted, want %d", got, n+1)
		}
		accepted := time.Since(start)
		if _, err := ad.WaitFor(ad.Timeout(ad.And(allClosed, child), waitLimit)); err != nil {
			childFailed("serving", err)
		}
		if !strings.Contains(out.String(), "--- PASS: TestTenThousandConnections") {
			childFailed("child", errors.New("did not pass"))
		}
		if d.RegisteredDescriptors() != 1 || d.ActiveDescriptors() != 0 {
			t.Fatalf("after closing: %d registered, %d active", d.RegisteredDescriptors(), d.ActiveDescriptors())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "clients:") {
				t.Log(strings.TrimSpace(line))
			}
		}
		t.Logf("%d connections: all accepted after %v, all closed after %v", n, accepted, time.Since(start))
	})
}

// scaleClients is the child of TestTenThousandConnections: n clients of
// the server at port, all connected before any talks, all answered before
// any closes.
func scaleClients(t *testing.T, n int, portStr string) {
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	raiseNOFILE(t, uint64(n)+512)
	withD(t, func(d *ad.Dispatcher) {
		start := time.Now()
		// 100 dialers, each opening its share of the connections one
		// after the other (a bounded number of handshakes in flight).
		const dialers = 100
		conns := make([]ad.AsyncFD, n)
		var dfs []*ad.Future[ad.Void]
		for k := 0; k < dialers; k++ {
			dfs = append(dfs, async(d, func(co *ad.Coro) (ad.Void, error) {
				for i := k; i < n; i += dialers {
					fd, err := ad.Await(co, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
					if err != nil {
						return ad.Void{}, fmt.Errorf("connection %d: %w", i, err)
					}
					conns[i] = fd
				}
				return ad.Void{}, nil
			}))
		}
		wait(t, ad.All(dfs...))
		connected := time.Since(start)
		if got := d.RegisteredDescriptors(); got != n {
			t.Fatalf("%d descriptors registered, want %d", got, n)
		}
		// Every connection talks at once.
		var echoes []*ad.Future[string]
		for i, fd := range conns {
			d.SendString(fd, strconv.Itoa(i), ad.DefaultFlags)
			echoes = append(echoes, d.RecvString(fd, 16, ad.DefaultFlags))
		}
		if got := d.ActiveDescriptors(); got == 0 {
			t.Fatal("no receive pending")
		}
		got := wait(t, ad.All(echoes...))
		for i, s := range got {
			if s != strconv.Itoa(i) {
				t.Fatalf("connection %d echoed %q", i, s)
			}
		}
		talked := time.Since(start)
		// Close with RST: no TIME_WAIT left on the loopback port range.
		for _, fd := range conns {
			setLinger0(t, fd)
			d.CloseSocket(fd)
		}
		t.Logf("clients: %d connected in %v, all echoed by %v", n, connected, talked)
	})
}
