package asyncdispatch_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The TLS measurements: server CPU per echoed message and memory per idle
// TLS connection, the view on one loop against Go's net and crypto/tls
// with a goroutine per connection. The server runs in a process of its
// own (this test binary, run again as TestTLSBenchServerChild), so its CPU
// and memory are its own; the client is the same for both, Go's net and
// crypto/tls in this process. Run them pinned apart:
//
//	go test -c -o /tmp/ad.test
//	taskset -c 1 /tmp/ad.test -test.run '^$' -test.bench 'TLSEcho|TLSIdle' \
//	    -test.benchtime 200000x
//
// The server is started with taskset -c 0 when taskset is there (so its
// GOMAXPROCS is 1 as well). Nothing here asserts a number.

// tlsBenchEnv names the server mode in the child process.
const tlsBenchEnv = "ASYNCDISPATCH_TLSBENCH_SERVER"

// Server modes:
//   - "gonet": net.Listen, a goroutine per connection, tls.Server, Read
//     and Write of a 512-byte buffer (Go's usual server);
//   - "loop": the same handler in an async procedure per connection on
//     one dispatcher, over the views;
//   - "loop-wait": like loop, but an idle connection waits with
//     co.WaitReadable before calling into tls, and takes its buffer from
//     a free list only when data is there;
//   - "loop-idle": no procedure at all while a connection is idle: a read
//     callback starts one per message (the coroutine comes from the
//     pool), which reads one message, answers, and arms the callback
//     again. (Both loop-wait and loop-idle rely on the client sending one
//     message at a time: tls may hold a second record read with the
//     first, which no readiness would announce.)
var tlsBenchModes = []string{"gonet", "loop", "loop-wait", "loop-idle"}

// TestTLSBenchServerChild is the server process of the TLS measurements;
// it does nothing unless started by them.
func TestTLSBenchServerChild(t *testing.T) {
	mode := os.Getenv(tlsBenchEnv)
	if mode == "" {
		t.Skip("only run as the server of the TLS benchmarks")
	}
	srvCfg, _ := testTLS()
	var addr string
	switch mode {
	case "gonet":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		addr = ln.Addr().String()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					tc := tls.Server(c, srvCfg)
					buf := make([]byte, 512)
					for {
						n, err := tc.Read(buf)
						if err != nil {
							return
						}
						if _, err := tc.Write(buf[:n]); err != nil {
							return
						}
					}
				}()
			}
		}()
	default:
		addrc := make(chan string)
		go loopTLSServer(mode, srvCfg, addrc)
		addr = <-addrc
	}
	fmt.Println(addr)
	// Commands on stdin: "measure" prints the heap and stack in use and
	// the resident set (after two collections); "profile PATH" writes a
	// heap profile. End of input ends the process.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "measure":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Println(ms.HeapInuse, ms.StackInuse, rssBytes())
		case len(f) == 2 && f[0] == "profile":
			runtime.GC()
			out, err := os.Create(f[1])
			if err == nil {
				pprof.WriteHeapProfile(out)
				out.Close()
			}
			fmt.Println("ok")
		}
	}
	os.Exit(0)
}

// loopTLSServer runs the loop server of mode on its own goroutine (its
// loop goroutine) and sends its address on addrc.
func loopTLSServer(mode string, cfg *tls.Config, addrc chan<- string) {
	d, err := ad.NewDispatcher()
	if err != nil {
		panic(err)
	}
	fd, err := d.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ln, _ := d.Listener(fd)
	addrc <- ln.Addr().String()
	var free [][]byte // loop-wait and loop-idle: buffers while reading
	get := func() []byte {
		if n := len(free); n > 0 {
			b := free[n-1]
			free = free[:n-1]
			return b
		}
		return make([]byte, 512)
	}
	put := func(b []byte) { free = append(free, b) }
	// echoOne reads one message and answers it; false when the
	// connection is over (and closed).
	echoOne := func(c *ad.Conn, tc *tls.Conn) bool {
		buf := get()
		defer put(buf)
		n, err := tc.Read(buf)
		if err == nil {
			_, err = tc.Write(buf[:n])
		}
		if err != nil {
			c.Close()
			return false
		}
		return true
	}
	var serveIdle func(c *ad.Conn, tc *tls.Conn)
	serveIdle = func(c *ad.Conn, tc *tls.Conn) {
		d.AddRead(c.FD(), func(ad.AsyncFD) bool {
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				if echoOne(c, tc) {
					serveIdle(c, tc)
				}
				return ad.Void{}, nil
			})
			return true
		})
	}
	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for {
			c, err := ln.AcceptConn()
			if err != nil {
				return ad.Void{}, err
			}
			ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
				tc := tls.Server(c, cfg)
				switch mode {
				case "loop":
					defer c.Close()
					buf := make([]byte, 512)
					for {
						n, err := tc.Read(buf)
						if err != nil {
							return ad.Void{}, nil
						}
						if _, err := tc.Write(buf[:n]); err != nil {
							return ad.Void{}, nil
						}
					}
				case "loop-wait":
					defer c.Close()
					if err := tc.Handshake(); err != nil {
						return ad.Void{}, nil
					}
					// The first message may have come with the client's
					// Finished and sit in tls already: read it first.
					for first := true; ; first = false {
						if !first {
							if err := co.WaitReadable(c.FD()); err != nil {
								return ad.Void{}, nil
							}
						}
						buf := get()
						n, err := tc.Read(buf)
						if err == nil {
							_, err = tc.Write(buf[:n])
						}
						put(buf)
						if err != nil {
							return ad.Void{}, nil
						}
					}
				default: // loop-idle
					if err := tc.Handshake(); err != nil {
						c.Close()
						return ad.Void{}, nil
					}
					// The first message may sit in tls already (see
					// loop-wait).
					if echoOne(c, tc) {
						serveIdle(c, tc)
					}
					return ad.Void{}, nil
				}
			})
		}
	})
	panic(d.RunForever())
}

// rssBytes is the process's resident set.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// benchServer is a running server child.
type benchServer struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	addr string
}

func startBenchServer(b *testing.B, mode string) *benchServer {
	b.Helper()
	args := []string{os.Args[0], "-test.run", "^TestTLSBenchServerChild$"}
	if p, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{p, "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), tlsBenchEnv+"="+mode)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{cmd: cmd, in: in, out: bufio.NewReader(outp)}
	s.addr = s.line(b)
	b.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return s
}

func (s *benchServer) line(b *testing.B) string {
	l, err := s.out.ReadString('\n')
	if err != nil {
		b.Fatalf("server: %v", err)
	}
	return strings.TrimSpace(l)
}

// cpu is the CPU time the server process has used: the sum over its
// threads of /proc/PID/task/TID/schedstat's first field (nanoseconds).
func (s *benchServer) cpu() time.Duration {
	pid := s.cmd.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		sum += v
	}
	return time.Duration(sum)
}

// switches is the number of times the server's threads went to sleep
// (voluntary context switches).
func (s *benchServer) switches() int64 {
	pid := s.cmd.Process.Pid
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var sum int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// selfCPU is the CPU time this process (the client) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tlsBenchClients dials n TLS connections to addr and makes one 64-byte
// exchange on each.
func tlsBenchClients(b *testing.B, addr string, n int) []*tls.Conn {
	b.Helper()
	// The server process made a certificate of its own: no verification
	// (what is measured is the server's cost either way).
	cliCfg := &tls.Config{InsecureSkipVerify: true}
	conns := make([]*tls.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	msg := make([]byte, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := tls.Dial("tcp4", addr, cliCfg)
			if err != nil {
				b.Error(err)
				return
			}
			conns[i] = c
			if err := tlsEchoOnce(c, msg); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return conns
}

func tlsEchoOnce(c *tls.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, msg)
	return err
}

// BenchmarkTLSEchoServerCPU: 50 TLS connections, handshakes done, each
// echoing 64-byte messages one at a time; b.N messages in all. The
// metric is the server's CPU time per message.
func BenchmarkTLSEchoServerCPU(b *testing.B) {
	for _, mode := range tlsBenchModes {
		b.Run(mode, func(b *testing.B) {
			s := startBenchServer(b, mode)
			const conns = 50
			cs := tlsBenchClients(b, s.addr, conns)
			defer func() {
				for _, c := range cs {
					c.Close()
				}
			}()
			per := b.N / conns
			cpu0, sw0, self0 := s.cpu(), s.switches(), selfCPU()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg := make([]byte, 64)
					for i := 0; i < per; i++ {
						if err := tlsEchoOnce(c, msg); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			msgs := per * conns
			if msgs > 0 {
				b.ReportMetric(float64(s.cpu()-cpu0)/float64(msgs), "server-ns/msg")
				b.ReportMetric(float64(s.switches()-sw0)/float64(msgs), "server-sleeps/msg")
				b.ReportMetric(float64(selfCPU()-self0)/float64(msgs), "client-ns/msg")
			}
		})
	}
}

// BenchmarkTLSIdleMemory: 5,000 TLS connections, each after one
// exchange, idle; the metrics are the server's heap, stack and resident
// set per connection (differences from before the connections, after two
// collections). b.N is ignored. With ASYNCDISPATCH_TLSBENCH_PROFILE=DIR
// the server writes DIR/heap-MODE.pprof (go tool pprof -top).
func BenchmarkTLSIdleMemory(b *testing.B) {
	for _, mode := range tlsBenchModes {
		b.Run(mode, func(b *testing.B) {
			s := startBenchServer(b, mode)
			measure := func() (heap, stack, rss float64) {
				fmt.Fprintln(s.in, "measure")
				fmt.Sscan(s.line(b), &heap, &stack, &rss)
				return
			}
			h0, st0, r0 := measure()
			const n = 5000
			cs := tlsBenchClients(b, s.addr, n)
			h1, st1, r1 := measure()
			if dir := os.Getenv("ASYNCDISPATCH_TLSBENCH_PROFILE"); dir != "" {
				fmt.Fprintln(s.in, "profile", filepath.Join(dir, "heap-"+mode+".pprof"))
				s.line(b)
			}
			b.ReportMetric((h1-h0)/n, "heap-B/conn")
			b.ReportMetric((st1-st0)/n, "stack-B/conn")
			b.ReportMetric((h1-h0+st1-st0)/n, "heap+stack-B/conn")
			b.ReportMetric((r1-r0)/n, "rss-B/conn")
			for _, c := range cs {
				c.Close()
			}
		})
	}
}
