//go:build race

package asyncdispatch_test

// socketRace: the race detector is on (allocation counts differ).
const socketRace = true
