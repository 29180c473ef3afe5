//go:build linux

package uring

import (
	"testing"
	"unsafe"
)

// FuzzRingIndices drives a ring of 2^k entries through pushes and pops
// from a start index anywhere in the 32-bit range, checking used, free
// and slot against a 64-bit model: the wrap of head and tail at 2^32
// must not matter.
func FuzzRingIndices(f *testing.F) {
	f.Add(uint32(0), uint8(3), []byte{5, 3, 200, 7})
	f.Add(^uint32(0)-2, uint8(2), []byte{4, 4, 4, 4, 4, 4})
	f.Add(uint32(1<<31), uint8(15), []byte{255, 255, 1})
	f.Fuzz(func(t *testing.T, start uint32, k uint8, ops []byte) {
		entries := uint32(1) << (k % 16)
		mask := entries - 1
		head, tail := start, start
		var mHead, mTail uint64 = uint64(start), uint64(start) // model: no wrap
		for _, op := range ops {
			n := uint32(op>>1) % (entries + 1)
			if op&1 == 0 { // push up to n
				n = min(n, free(head, tail, entries))
				for i := uint32(0); i < n; i++ {
					if s := slot(tail, mask); uint64(s) != mTail%uint64(entries) {
						t.Fatalf("slot(%d) = %d, model %d", tail, s, mTail%uint64(entries))
					}
					tail++
					mTail++
				}
			} else { // pop up to n
				n = min(n, used(head, tail))
				head += n
				mHead += uint64(n)
			}
			if u := used(head, tail); uint64(u) != mTail-mHead {
				t.Fatalf("used(%d, %d) = %d, model %d", head, tail, u, mTail-mHead)
			}
			if fr := free(head, tail, entries); uint64(fr) != uint64(entries)-(mTail-mHead) {
				t.Fatalf("free = %d, model %d", fr, uint64(entries)-(mTail-mHead))
			}
		}
	})
}

func TestIndicesAcrossWrap(t *testing.T) {
	for _, c := range []struct{ head, tail, entries, used, free, slot uint32 }{
		{0, 0, 8, 0, 8, 0},
		{^uint32(0), 3, 8, 4, 4, 3}, // tail wrapped, head not
		{^uint32(0) - 7, ^uint32(0), 8, 7, 1, 7},
		{^uint32(0) - 6, 1, 8, 8, 0, 1}, // full across the wrap
		{5, 5, 1 << 15, 0, 1 << 15, 5},
	} {
		if u := used(c.head, c.tail); u != c.used {
			t.Errorf("used(%#x, %#x) = %d, want %d", c.head, c.tail, u, c.used)
		}
		if f := free(c.head, c.tail, c.entries); f != c.free {
			t.Errorf("free(%#x, %#x, %d) = %d, want %d", c.head, c.tail, c.entries, f, c.free)
		}
		if s := slot(c.tail, c.entries-1); s != c.slot {
			t.Errorf("slot(%#x) = %d, want %d", c.tail, s, c.slot)
		}
	}
}

// TestABILayout checks the structs against the kernel's sizes and the
// offsets the kernel reads.
func TestABILayout(t *testing.T) {
	var s SQE
	var p params
	var br bufReg
	var e bufEntry
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof sqe", unsafe.Sizeof(s), sqeSize},
		{"sizeof cqe", unsafe.Sizeof(CQE{}), cqeSize},
		{"sizeof params", unsafe.Sizeof(p), sizeofParams},
		{"sizeof getevents_arg", unsafe.Sizeof(getEventsArg{}), sizeofGetEventsArg},
		{"sizeof probe header", unsafe.Offsetof(probe{}.Ops), sizeofProbeHeader},
		{"sizeof probe op", unsafe.Sizeof(probeOp{}), sizeofProbeOp},
		{"sizeof buf_reg", unsafe.Sizeof(br), sizeofBufReg},
		{"sizeof buf", unsafe.Sizeof(e), bufRingEntrySize},
		{"sizeof timespec", unsafe.Sizeof(Timespec{}), sizeofKernelTimespec},
		{"sqe.fd", unsafe.Offsetof(s.Fd), 4},
		{"sqe.off", unsafe.Offsetof(s.Off), 8},
		{"sqe.addr", unsafe.Offsetof(s.Addr), 16},
		{"sqe.len", unsafe.Offsetof(s.Len), 24},
		{"sqe.op_flags", unsafe.Offsetof(s.OpFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(s.UserData), 32},
		{"sqe.buf_index", unsafe.Offsetof(s.BufIndex), 40},
		{"sqe.file_index", unsafe.Offsetof(s.FileIndex), 44},
		{"sqe.addr3", unsafe.Offsetof(s.Addr3), 48},
		{"params.sq_off", unsafe.Offsetof(p.SQOff), 40},
		{"params.cq_off", unsafe.Offsetof(p.CQOff), 80},
		{"buf.bid (holds the ring tail of entry 0 at +2)", unsafe.Offsetof(e.Bid), 12},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
