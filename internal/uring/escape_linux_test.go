//go:build linux

package uring

import "testing"

// TestPrepMovesBuffersToHeap: a buffer declared on the stack and given to
// a prep helper is allocated on the heap by the compiler, because the
// kernel will write into it after the stack may have moved.
func TestPrepMovesBuffersToHeap(t *testing.T) {
	var sqe SQE
	allocs := testing.AllocsPerRun(100, func() {
		var local [64]byte
		sqe.PrepRecv(-1, local[:], 0, 1)
	})
	if allocs != 1 {
		t.Errorf("a local buffer given to PrepRecv: %v allocations, want 1 (moved to the heap)", allocs)
	}
	ts := testing.AllocsPerRun(100, func() {
		var local Timespec
		sqe.PrepTimeout(&local, 0, 0, 1)
	})
	if ts != 1 {
		t.Errorf("a local Timespec given to PrepTimeout: %v allocations, want 1", ts)
	}
}
