package alisim

import (
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// Fault makes matching API calls fail or slow down. It is evaluated after
// authentication and throttling, just before the action runs, so a faulted
// call has no effect on the state.
type Fault struct {
	// Action is the action name ("CreateRouteEntries"); empty or "*"
	// matches every action.
	Action string `json:"action,omitempty"`
	// Param, when set, limits the fault to calls that carry a non-empty
	// value for that parameter (e.g. "NextToken": only the follow-up pages
	// of a listing).
	Param string `json:"param,omitempty"`
	// Code is the error code answered; empty means the call is only
	// delayed.
	Code string `json:"code,omitempty"`
	// Message is the error message; empty means the code's usual one.
	Message string `json:"message,omitempty"`
	// HTTPStatus overrides the code's HTTP status.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// Rate is the probability in (0, 1] that a matching call is hit; 0
	// means every matching call.
	Rate float64 `json:"rate,omitempty"`
	// Count is how many calls the fault hits before it expires; 0 means
	// unlimited.
	Count int `json:"count,omitempty"`
	// Latency is real time added to each hit call before it is answered.
	Latency time.Duration `json:"latency,omitempty"`
}

type faultState struct {
	Fault
	hits int
}

// Throttle is a token bucket limiting one action: QPS tokens per second of
// simulated time, at most Burst saved up.
type Throttle struct {
	Action string  `json:"action"`
	QPS    float64 `json:"qps"`
	Burst  int     `json:"burst"`
}

type bucket struct {
	qps    float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed.Seconds()*b.qps)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// InjectFault adds a fault. Faults are checked in the order added; the
// first one that hits with a Code decides the error, and the latencies of
// every hit fault add up.
func (s *Simulator) InjectFault(f Fault) {
	if f.Action == "*" {
		f.Action = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f})
}

// Faults returns the active faults with their remaining counts folded in.
func (s *Simulator) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		ff := f.Fault
		if ff.Count > 0 {
			ff.Count -= f.hits
		}
		out = append(out, ff)
	}
	return out
}

// ClearFaults removes every fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetThrottle limits action (or every action with "*") to qps calls per
// second of simulated time with the given burst; qps <= 0 removes the
// limit. Calls over the limit fail with Throttling.User.
func (s *Simulator) SetThrottle(action string, qps float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qps <= 0 {
		delete(s.throttles, action)
		return
	}
	if burst < 1 {
		burst = 1
	}
	s.throttles[action] = &bucket{qps: qps, burst: float64(burst), tokens: float64(burst), last: s.clock.Now()}
}

// Throttles returns the configured limits.
func (s *Simulator) Throttles() []Throttle {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Throttle{}
	for _, a := range sortedKeys(s.throttles) {
		b := s.throttles[a]
		out = append(out, Throttle{Action: a, QPS: b.qps, Burst: int(b.burst)})
	}
	return out
}

// admit applies throttling, then faults (sleeping their latency).
func (s *Simulator) admit(r *http.Request, c *call) *apiError {
	var (
		latency time.Duration
		aerr    *apiError
	)
	s.mu.Lock()
	for _, key := range []string{c.action, "*"} {
		if b, ok := s.throttles[key]; ok && !b.take(c.now) {
			s.mu.Unlock()
			return errorf(CodeThrottlingUser, "")
		}
	}
	kept := s.faults[:0]
	for _, f := range s.faults {
		hit := (f.Action == "" || f.Action == c.action) && (f.Param == "" || c.has(f.Param)) && (f.Rate <= 0 || rand.Float64() < f.Rate)
		if hit && (aerr == nil || f.Code == "") {
			f.hits++
			latency += f.Latency
			if f.Code != "" {
				aerr = errorf(f.Code, "")
				if f.Message != "" {
					aerr.Message = f.Message
				}
				aerr.Status = f.HTTPStatus
			}
		}
		if f.Count == 0 || f.hits < f.Count {
			kept = append(kept, f)
		}
	}
	s.faults = kept
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	return aerr
}

// count records one call outcome.
func (s *Simulator) count(action, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.counters[action]
	if m == nil {
		m = map[string]int{}
		s.counters[action] = m
	}
	m[code]++
}

// Counters returns the number of API calls per action and result code
// ("Success" or the error code).
func (s *Simulator) Counters() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.counters))
	for a, m := range s.counters {
		cm := make(map[string]int, len(m))
		for k, v := range m {
			cm[k] = v
		}
		out[a] = cm
	}
	return out
}

// ResetCounters zeroes the call counters.
func (s *Simulator) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters = map[string]map[string]int{}
}
