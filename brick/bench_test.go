package brick

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkCreate measures creates through a 3-member replica set over
// gRPC: one at a time (latency) and 16 concurrent proposers.
func BenchmarkCreate(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("proposers=%d", par), func(b *testing.B) {
			rs := newReplicaSet(b, 3)
			_, lc := rs.leader()
			makeRoot(rs.t, lc)
			var n atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < par; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := n.Add(1)
						if i > int64(b.N) {
							return
						}
						if r, err := create(b.Context(), lc, fmt.Sprintf("f%d", i)); err != nil || r.Code != 0 {
							b.Errorf("create: %v %v", r, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
