package asyncdispatch

// SetPidfdOpen replaces pidfd_open(2) for a test (to play a kernel without
// it) and returns the function that restores the real one.
func SetPidfdOpen(fn func(pid int) (int, error)) (restore func()) {
	old := pidfdOpen
	pidfdOpen = fn
	return func() { pidfdOpen = old }
}
