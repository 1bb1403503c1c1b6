// Package stats holds the arithmetic of the benchmark: the physical lower
// bound of a cold start under the VPC's write model, and percentiles.
package stats

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// WriteModel is the latency model of the VPC route API: each write call keeps
// its VPC busy for Base + PerEntry × entries, and only one write may be in
// flight per VPC. Written entries are Available when the write's busy
// window ends, or after Pending when that is longer.
type WriteModel struct {
	Base     time.Duration
	PerEntry time.Duration
	// Pending is how long written entries stay Pending at least (0: as
	// long as the busy window).
	Pending time.Duration
	// MaxBatch is the most entries one write call accepts (50 for
	// CreateRouteEntries).
	MaxBatch int
}

// Write returns how long one write of n entries keeps the VPC busy.
func (m WriteModel) Write(n int) time.Duration {
	return m.Base + time.Duration(n)*m.PerEntry
}

// LowerBound is the least time in which n entries can be written to one
// table and be Available: ceil(n / MaxBatch) full batches back to back,
// the last one settling after its busy window or its Pending time,
// whichever is longer. Nothing can beat it, since writes to a VPC are
// serialized.
func (m WriteModel) LowerBound(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	batches := (n + m.MaxBatch - 1) / m.MaxBatch
	return time.Duration(batches-1)*m.Write(m.MaxBatch) + max(m.Write(m.MaxBatch), m.Pending)
}

// Validate reports whether the model is usable.
func (m WriteModel) Validate() error {
	if m.Base < 0 || m.PerEntry < 0 || m.Pending < 0 || m.MaxBatch < 1 {
		return fmt.Errorf("invalid write model: base %v, per entry %v, pending %v, batch %d", m.Base, m.PerEntry, m.Pending, m.MaxBatch)
	}
	return nil
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of ds:
// the smallest sample such that at least p% of the samples are ≤ it. With 20
// samples p99 is the largest one; nothing is interpolated.
func Percentile(ds []time.Duration, p float64) (time.Duration, error) {
	if len(ds) == 0 {
		return 0, fmt.Errorf("percentile of no samples")
	}
	if p <= 0 || p > 100 {
		return 0, fmt.Errorf("percentile %v out of (0, 100]", p)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1], nil
}
