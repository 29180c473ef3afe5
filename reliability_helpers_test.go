package asyncdispatch_test

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Helpers of the reliability tests (fault_test.go, soak_test.go): byte
// streams that carry their own check, and process figures.

// payload returns n pseudo-random bytes, the same for the same seed.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// sendChunks writes data to fd with one Send per chunk, chunk sizes drawn
// from rng up to max, each awaited before the next is issued; it fails on
// the first error.
func sendChunks(d *ad.Dispatcher, fd ad.AsyncFD, data []byte, rng *rand.Rand, max int, flags ad.SocketFlag) *ad.Future[ad.Void] {
	return ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for off := 0; off < len(data); {
			n := 1 + rng.IntN(max)
			if n > len(data)-off {
				n = len(data) - off
			}
			if _, err := ad.Await(co, d.Send(fd, data[off:off+n], flags)); err != nil {
				return ad.Void{}, fmt.Errorf("send at %d: %w", off, err)
			}
			off += n
		}
		return ad.Void{}, nil
	})
}

// sendQueued issues every chunk's Send at once, without waiting (they
// queue on the descriptor and must go out in order), and completes when
// all have.
func sendQueued(d *ad.Dispatcher, fd ad.AsyncFD, data []byte, rng *rand.Rand, max int, flags ad.SocketFlag) *ad.Future[[]ad.Void] {
	var fs []*ad.Future[ad.Void]
	for off := 0; off < len(data); {
		n := 1 + rng.IntN(max)
		if n > len(data)-off {
			n = len(data) - off
		}
		fs = append(fs, d.Send(fd, data[off:off+n], flags))
		off += n
	}
	return ad.All(fs...)
}

// recvAll reads from fd with RecvInto, at most max bytes a call (sizes
// drawn from rng), until it has want bytes (want < 0: until end of file)
// and returns them.
func recvAll(d *ad.Dispatcher, fd ad.AsyncFD, want int, rng *rand.Rand, max int, flags ad.SocketFlag) *ad.Future[[]byte] {
	return ad.Async(d, func(co *ad.Coro) ([]byte, error) {
		var got []byte
		buf := make([]byte, max)
		for want < 0 || len(got) < want {
			n := 1 + rng.IntN(max)
			if want >= 0 && n > want-len(got) {
				n = want - len(got)
			}
			k, err := ad.Await(co, d.RecvInto(fd, buf[:n], flags))
			if err != nil {
				return got, fmt.Errorf("recv at %d: %w", len(got), err)
			}
			if k == 0 {
				if want < 0 {
					return got, nil
				}
				return got, fmt.Errorf("end of file at %d of %d bytes", len(got), want)
			}
			got = append(got, buf[:k]...)
		}
		return got, nil
	})
}

// echoConn echoes everything it reads on fd until end of file, then
// closes fd; it completes with the number of bytes echoed and the CRC-32
// of them (the server's end of the checksum).
func echoConn(d *ad.Dispatcher, fd ad.AsyncFD, bufSize int) *ad.Future[echoed] {
	return ad.Async(d, func(co *ad.Coro) (echoed, error) {
		defer d.CloseSocket(fd)
		var e echoed
		buf := make([]byte, bufSize)
		for {
			n, err := ad.Await(co, d.RecvInto(fd, buf, ad.DefaultFlags))
			if err != nil {
				return e, err
			}
			if n == 0 {
				return e, nil
			}
			e.n += n
			e.crc = crc32.Update(e.crc, crc32.IEEETable, buf[:n])
			if _, err := ad.Await(co, d.Send(fd, buf[:n], ad.DefaultFlags)); err != nil {
				return e, err
			}
		}
	})
}

type echoed struct {
	n   int
	crc uint32
}

// sameBytes fails t with the first difference of got and want.
func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: %d bytes, want %d; first difference at %d (crc %08x, want %08x)",
		what, len(got), len(want), i, crc32.ChecksumIEEE(got), crc32.ChecksumIEEE(want))
}

// sample is the process's footprint at one time.
type sample struct {
	fds, goroutines int
	rss             uint64 // resident set, bytes
	heap            uint64 // live heap, bytes
	fdMap           map[string]string
}

// takeSample measures the process after a collection (so the heap and RSS
// are what is live, not what is garbage).
func takeSample() sample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := openFDs()
	return sample{
		fds:        len(fds),
		fdMap:      fds,
		goroutines: runtime.NumGoroutine(),
		rss:        rss(),
		heap:       ms.HeapAlloc,
	}
}

// rss is VmRSS from /proc/self/status.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (s sample) String() string {
	return fmt.Sprintf("fds %d, goroutines %d, RSS %.1f MiB, heap %.1f MiB",
		s.fds, s.goroutines, float64(s.rss)/(1<<20), float64(s.heap)/(1<<20))
}

// backToBaseline fails t unless the process has returned to before: the
// same descriptors and goroutines (waiting a moment for exiting
// goroutines), and an RSS and heap within slack of before's.
func backToBaseline(t testing.TB, before sample, slack uint64) sample {
	t.Helper()
	var after sample
	for i := 0; i < 100; i++ {
		after = takeSample()
		if after.fds <= before.fds && after.goroutines <= before.goroutines {
			break
		}
		runtime.Gosched()
		sleepMs(10)
	}
	if after.fds > before.fds || after.goroutines > before.goroutines {
		t.Errorf("not back to baseline: before %v; after %v; new descriptors: %v", before, after, newFDs(before.fdMap))
	}
	if after.rss > before.rss+slack || after.heap > before.heap+slack {
		t.Errorf("memory not back to baseline (slack %d MiB): before %v; after %v", slack>>20, before, after)
	}
	return after
}

func sleepMs(ms int) { <-time.After(time.Duration(ms) * time.Millisecond) }
