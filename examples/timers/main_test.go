package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestTimers(t *testing.T) {
	var out strings.Builder
	if err := run(20*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		lines = append(lines, strings.TrimSpace(l[strings.Index(l, "  ")+2:])) // without the time
	}
	want := []string{
		"slept 1 unit",
		"slow job finished within 2 units: false",
		"tick 1",
		"slow job: done",
		"long job: stopped: asyncdispatch: future was cancelled",
		"gave up on the long job: asyncdispatch: timed out (ErrTimeout: true)",
		`slow job's result: "slow job result"`,
		"an hour's pause, cancelled: asyncdispatch: future was cancelled",
		"tick 2",
		"nothing pending any more",
	}
	// Lines due at different times come in that order; the two due at
	// the same time (tick 1, slow job done) in either.
	sorted := slices.Clone(lines)
	slices.Sort(sorted)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(sorted, wantSorted) {
		t.Fatalf("output:\n%s\nwant the lines:\n%s", out.String(), strings.Join(want, "\n"))
	}
	for i, l := range lines {
		j := slices.Index(want, l)
		if j != i && !(i == 2 && j == 3 || i == 3 && j == 2) {
			t.Fatalf("line %d %q out of order:\n%s", i, l, out.String())
		}
	}
}
