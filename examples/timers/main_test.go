package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The lines come in the order the program's logic gives them, whatever
// the machine's load: the show is one sequence of steps, and each of its
// timeouts races only something an hour long. Their times are not
// checked (a stalled loop prints them late).
func TestTimers(t *testing.T) {
	var out strings.Builder
	if err := run(20*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		// Without the time, right-aligned in 5 columns ("   1s" too).
		_, text, _ := strings.Cut(strings.TrimSpace(l), "  ")
		lines = append(lines, strings.TrimSpace(text))
	}
	want := []string{
		"slept 1 unit",
		"tick 1",
		"tick 2",
		"tick 3",
		"quick job: done",
		"quick job finished within an hour: true",
		"an hour's pause finished within 2 units: false",
		"long job: stopped: asyncdispatch: future was cancelled",
		"gave up on the long job: asyncdispatch: timed out (ErrTimeout: true)",
		"the hour's pause, cancelled: asyncdispatch: future was cancelled",
		"nothing pending any more",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("output:\n%s\nwant the lines:\n%s", out.String(), strings.Join(want, "\n"))
	}
}
