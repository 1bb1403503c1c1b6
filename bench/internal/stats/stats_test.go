package stats

import (
	"testing"
	"time"
)

func TestLowerBound(t *testing.T) {
	m := WriteModel{Base: 200 * time.Millisecond, PerEntry: 2 * time.Millisecond, MaxBatch: 50}
	// With entries Pending longer than the busy window (the realistic
	// profile) the batches still go back to back, and only the last
	// one's Pending time adds up.
	realistic := WriteModel{Base: 5 * time.Second, PerEntry: 20 * time.Millisecond, Pending: 10 * time.Second, MaxBatch: 50}
	for _, tc := range []struct {
		m    WriteModel
		n    int
		want time.Duration
	}{
		{m, 0, 0},
		{m, 1, 300 * time.Millisecond},
		{m, 50, 300 * time.Millisecond},
		{m, 51, 600 * time.Millisecond},
		{m, 200, 1200 * time.Millisecond},
		{m, 1000, 6 * time.Second},
		{m, 5000, 30 * time.Second},
		{realistic, 1, 10 * time.Second},
		{realistic, 50, 10 * time.Second},
		{realistic, 51, 16 * time.Second},
		{realistic, 200, 28 * time.Second},
	} {
		if got := tc.m.LowerBound(tc.n); got != tc.want {
			t.Errorf("%+v: LowerBound(%d) = %v, want %v", tc.m, tc.n, got, tc.want)
		}
	}
	if got, want := m.Write(1), 202*time.Millisecond; got != want {
		t.Errorf("Write(1) = %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	if err := (WriteModel{Base: time.Second, MaxBatch: 50}).Validate(); err != nil {
		t.Errorf("valid model rejected: %v", err)
	}
	for _, m := range []WriteModel{
		{Base: -time.Second, MaxBatch: 50},
		{PerEntry: -time.Millisecond, MaxBatch: 50},
		{MaxBatch: 0},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("invalid model %+v accepted", m)
		}
	}
}

func TestPercentile(t *testing.T) {
	var twenty []time.Duration
	for i := 20; i >= 1; i-- { // unsorted on purpose
		twenty = append(twenty, time.Duration(i)*time.Second)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 10 * time.Second},
		{95, 19 * time.Second},
		{99, 20 * time.Second},
		{100, 20 * time.Second},
		{1, 1 * time.Second},
	} {
		got, err := Percentile(twenty, tc.p)
		if err != nil || got != tc.want {
			t.Errorf("Percentile(p%v) = %v, %v; want %v", tc.p, got, err, tc.want)
		}
	}
	if twenty[0] != 20*time.Second {
		t.Error("Percentile sorted its input in place")
	}
	if _, err := Percentile(nil, 50); err == nil {
		t.Error("Percentile of no samples succeeded")
	}
	for _, p := range []float64{0, -1, 101} {
		if _, err := Percentile(twenty, p); err == nil {
			t.Errorf("Percentile(p%v) succeeded", p)
		}
	}
}
