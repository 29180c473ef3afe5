package asyncdispatch_test

import (
	"fmt"
	"sync"
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// BenchmarkCallSoonThreadSafe: producers goroutines post b.N callbacks in
// all to one loop running on its own goroutine; ns/op is per callback,
// posted and run.
func BenchmarkCallSoonThreadSafe(b *testing.B) {
	for _, producers := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			d := newD(b)
			keep := ad.NewExternalFuture[ad.Void](d, "keep")
			ran := 0
			tick := func() { ran++ }
			done := make(chan error, 1)
			go func() { _, err := ad.WaitFor(keep); done <- err }()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				n := b.N / producers
				if p == 0 {
					n += b.N % producers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						if err := d.CallSoonThreadSafe(tick); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			d.CallSoonThreadSafe(func() { keep.Complete(ad.Void{}) })
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if ran != b.N {
				b.Fatalf("ran %d of %d", ran, b.N)
			}
		})
	}
}
