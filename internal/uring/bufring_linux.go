//go:build linux

package uring

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Provided buffer rings (IORING_REGISTER_PBUF_RING, 5.19).
//
// A BufRing is a group of n buffers of size bytes that the kernel picks
// from for requests with IOSQE_BUFFER_SELECT (PrepRecvMultishot): the
// completion names the buffer it filled (CQE.Buffer), the caller reads
// it and gives it back with Put. When the ring is empty such requests
// complete with -ENOBUFS; a multishot one ends and must be prepared again
// after buffers are returned.
//
// Memory: one anonymous mapping holds the ring of n 16-byte entries
// (rounded up to a page: the kernel wants the ring page-aligned) followed
// by the n buffers. It is not Go heap memory, so the garbage collector
// neither frees nor scans it, and the buffers' addresses stay valid until
// Close unmaps it (after unregistering the group).
//
// What must stay true:
//   - only the loop goroutine writes the ring; the kernel only reads it
//     and consumes entries by advancing its own head, never visible here;
//   - an entry is filled before the tail that covers it is published,
//     with an atomic store (release; the kernel loads it with acquire);
//   - the tail is the 16-bit field at offset 14 (the kernel header
//     overlays it on entry 0's reserved field) and sync/atomic has no
//     16-bit store, so the tail is published by an atomic 32-bit store
//     of the word at offset 12, which also holds entry 0's 16-bit buffer
//     id: that half is written back with the value it already has (only
//     this goroutine ever writes it), the other half is the new tail;
//   - a buffer id is in the ring at most once: Put only ids that a
//     completion handed out (the kernel does not check).
type BufRing struct {
	r       *Ring
	group   uint16
	entries uint32
	size    int
	mem     []byte
	ring    []bufEntry
	bufs    []byte
	tail    uint16
	word    *uint32 // the 32-bit word at ring offset 12
}

// NewBufRing registers a provided buffer group of entries buffers of
// size bytes each, all handed to the kernel at once. entries must be a
// power of two no larger than 32768. The BufRing is closed with the
// Ring, or earlier by Close.
func (r *Ring) NewBufRing(group uint16, entries, size int) (*BufRing, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if entries <= 0 || entries > maxBufRingEntries || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("uring: buffer ring size %d is not a power of two in [1, %d]", entries, maxBufRingEntries)
	}
	if size <= 0 || size > 1<<31-1 || int64(entries)*int64(size) > 1<<40 {
		return nil, fmt.Errorf("uring: buffer size %d out of range", size)
	}
	page := os.Getpagesize()
	ringBytes := (entries*bufRingEntrySize + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, ringBytes+entries*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	b := &BufRing{
		r:       r,
		group:   group,
		entries: uint32(entries),
		size:    size,
		mem:     mem,
		ring:    unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), entries),
		bufs:    mem[ringBytes:],
		word:    (*uint32)(unsafe.Pointer(&mem[12])),
	}
	reg := bufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), RingEntries: uint32(entries), Bgid: group}
	if _, e := sysRegister(r.fd, registerPbufRing, unsafe.Pointer(&reg), 1); e != 0 {
		unix.Munmap(mem)
		return nil, errnoErr("io_uring_register", e)
	}
	for i := 0; i < entries; i++ {
		b.add(uint16(i))
	}
	b.publish()
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

// Group is the buffer group id to give PrepRecvMultishot.
func (b *BufRing) Group() uint16 { return b.group }

// Size is the size of each buffer.
func (b *BufRing) Size() int { return b.size }

// Bytes is buffer id's memory, valid until Close. A completion with
// CQE.Buffer() == id, ok and Res = n > 0 filled Bytes(id)[:n].
func (b *BufRing) Bytes(id uint16) []byte {
	off := int(id) * b.size
	return b.bufs[off : off+b.size : off+b.size]
}

// Put gives buffer id back to the kernel.
func (b *BufRing) Put(id uint16) {
	b.add(id)
	b.publish()
}

func (b *BufRing) add(id uint16) {
	e := &b.ring[uint32(b.tail)&(b.entries-1)]
	e.Addr = uint64(uintptr(unsafe.Pointer(&b.bufs[int(id)*b.size])))
	e.Len = uint32(b.size)
	e.Bid = id
	b.tail++
}

// publish stores the tail (see the type's comment).
func (b *BufRing) publish() {
	bid0 := uint32(b.ring[0].Bid)
	if bigEndian {
		atomic.StoreUint32(b.word, bid0<<16|uint32(b.tail))
	} else {
		atomic.StoreUint32(b.word, uint32(b.tail)<<16|bid0)
	}
}

// Close unregisters the group and unmaps its memory. No request may be
// using the group: call it after their final completions, or let
// Ring.Close do it after cancelling them.
func (b *BufRing) Close() error {
	for i, x := range b.r.bufRings {
		if x == b {
			b.r.bufRings = append(b.r.bufRings[:i], b.r.bufRings[i+1:]...)
			return b.release()
		}
	}
	return nil
}

func (b *BufRing) release() error {
	var err error
	if b.r.fd >= 0 {
		reg := bufReg{Bgid: b.group}
		_, e := sysRegister(b.r.fd, unregisterPbufRing, unsafe.Pointer(&reg), 1)
		err = errnoErr("io_uring_register", e)
	}
	if b.mem != nil {
		if e := unix.Munmap(b.mem); e != nil && err == nil {
			err = os.NewSyscallError("munmap", e)
		}
		b.mem, b.ring, b.bufs = nil, nil, nil
	}
	return err
}
