//go:build linux

package uring

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRecvMultishotBuffers: a multishot receive fills provided buffers;
// when they run out it ends with -ENOBUFS, and once buffers are returned
// a new one picks up the data still queued.
func TestRecvMultishotBuffers(t *testing.T) {
	r := newRing(t, Options{})
	a, b := socketpair(t, unix.SOCK_SEQPACKET) // message boundaries: one buffer per send
	const nbuf, size = 4, 64
	br, err := r.NewBufRing(7, nbuf, size)
	if err != nil {
		t.Fatal(err)
	}
	submit(t, r, func(s *SQE) { s.PrepRecvMultishot(b, br.Group(), 0, 1) })

	var held []uint16 // buffers the test holds
	recvd := 0
	expect := func(want string, more bool) {
		t.Helper()
		c, _ := waitCQE(t, r, 1)
		id, ok := c.Buffer()
		if !ok || c.Res != int32(len(want)) || c.More() != more {
			t.Fatalf("recv = %+v (buffer %d %v), want %d bytes, more %v", c, id, ok, len(want), more)
		}
		if got := br.Bytes(id)[:c.Res]; !bytes.Equal(got, []byte(want)) {
			t.Fatalf("buffer %d holds %q, want %q", id, got, want)
		}
		held = append(held, id)
		recvd++
	}
	for i := 0; i < nbuf; i++ {
		msg := fmt.Sprintf("msg%d", i)
		unix.Write(a, []byte(msg))
		// The last buffer filled: the kernel finds the ring empty on
		// its next attempt, not now, so F_MORE is still set.
		expect(msg, true)
	}
	unix.Write(a, []byte("late"))
	c, _ := waitCQE(t, r, 1)
	if c.Err() != unix.ENOBUFS || c.More() {
		t.Fatalf("with no buffer left: %+v (%v), want ENOBUFS without F_MORE", c, c.Err())
	}
	// Give the buffers back and re-arm: the queued message arrives.
	for _, id := range held {
		br.Put(id)
	}
	held = held[:0]
	submit(t, r, func(s *SQE) { s.PrepRecvMultishot(b, br.Group(), 0, 1) })
	expect("late", true)
	// Buffers keep cycling past the ring's wrap (more Puts than entries).
	for i := 0; i < 3*nbuf; i++ {
		for _, id := range held {
			br.Put(id)
		}
		held = held[:0]
		msg := fmt.Sprintf("again%d", i)
		unix.Write(a, []byte(msg))
		expect(msg, true)
	}
	// EOF ends it.
	unix.Shutdown(a, unix.SHUT_WR)
	if c, _ := waitCQE(t, r, 1); c.Res != 0 || c.More() {
		t.Errorf("at EOF: %+v, want res 0 without F_MORE", c)
	}
	if err := br.Close(); err != nil {
		t.Errorf("BufRing.Close: %v", err)
	}
}

func TestBufRingArgs(t *testing.T) {
	r := newRing(t, Options{})
	for _, c := range []struct{ n, size int }{{0, 64}, {3, 64}, {1 << 16, 64}, {4, 0}} {
		if _, err := r.NewBufRing(1, c.n, c.size); err == nil {
			t.Errorf("NewBufRing(%d, %d) succeeded", c.n, c.size)
		}
	}
	b, err := r.NewBufRing(2, 1, 16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NewBufRing(2, 1, 16); err == nil {
		t.Error("a second group with the same id was registered")
	}
	_ = b // closed by r.Close
}
