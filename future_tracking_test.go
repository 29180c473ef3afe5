package asyncdispatch_test

import (
	"strings"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// FuturesInProgress names, as the first frame of each future's creation
// stack, the user's function that made it — for the futures the package
// embeds in its timers, socket operations and async calls as much as for
// NewFuture.
func TestFuturesInProgressCreationSite(t *testing.T) {
	d := newD(t)
	d.SetTracking(true)
	a, _ := socketPair(t, d)
	made := map[string]bool{}
	d.SleepAsync(time.Hour)
	ad.NewFuture[int](d, "plain")
	d.Recv(a, 16, 0)
	ad.Async(d, func(co *ad.Coro) (int, error) {
		_, err := co.RecvInto(a, make([]byte, 4), 0)
		return 0, err
	})
	for _, fi := range d.FuturesInProgress() {
		first, _, _ := strings.Cut(fi.Stack, "\n")
		if !strings.Contains(first, "TestFuturesInProgressCreationSite") {
			t.Errorf("%s: created at %q, want the test function", fi.Proc, first)
		}
		made[fi.Proc] = true
	}
	for _, p := range []string{"SleepAsync", "plain", "Recv", "RecvInto"} {
		if !made[p] {
			t.Errorf("no %s among %v", p, made)
		}
	}
}
