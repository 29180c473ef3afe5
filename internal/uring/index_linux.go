//go:build linux

package uring

// Ring index arithmetic.
//
// The kernel's ring indices are free-running 32-bit counters that wrap
// at 2^32; the slot of index i is i & mask with mask = entries-1 (entries
// a power of two, at most 2^15). Everything below must stay right across
// the wrap, which holds as long as every distance is computed as a uint32
// difference and is never more than entries (the kernel and this package
// both keep tail - head <= entries). index_linux_test.go fuzzes these
// against a 64-bit model.

// used is how many entries lie between head and tail.
func used(head, tail uint32) uint32 { return tail - head }

// free is how many entries can still be added to a ring of the given
// size holding head..tail.
func free(head, tail, entries uint32) uint32 { return entries - (tail - head) }

// slot is the array index of ring index i.
func slot(i, mask uint32) uint32 { return i & mask }
