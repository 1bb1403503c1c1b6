package cloud

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "vpc_route_publisher"

// metrics are the cloud API metrics. Labels are bounded: action is one of the
// few actions the package calls, code one of the Alibaba error codes.
type metrics struct {
	calls     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	throttles *prometheus.CounterVec
	retries   *prometheus.CounterVec
	// permissionMissing is 1 per RAM action found missing (Permissions).
	permissionMissing *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "cloud_api_calls_total",
			Help:      "Alibaba Cloud API calls by action and result code (Success, the Alibaba error code, Timeout or NetworkError).",
		}, []string{"action", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "cloud_api_call_duration_seconds",
			Help:      "Duration of single Alibaba Cloud API calls (one attempt, without client-side rate-limit waiting).",
			Buckets:   []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "cloud_api_throttles_total",
			Help:      "Alibaba Cloud API calls answered with a throttling error, by action.",
		}, []string{"action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "cloud_api_retries_total",
			Help:      "Retried Alibaba Cloud API calls (throttled, busy or network errors), by action.",
		}, []string{"action"}),
		permissionMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "permission_missing",
			Help:      "1 for each RAM action the publisher needs and its credentials were last found not to have (0 once granted); while any is 1, no route is deleted because its instance looks released.",
		}, []string{"action"}),
	}
	if reg == nil {
		return m, nil
	}
	// Several Clouds built on one registry (the command's connection
	// attempts, say) share the series: the calls of a failed attempt stay
	// counted.
	var err error
	if m.calls, err = register(reg, m.calls); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.throttles, err = register(reg, m.throttles); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.permissionMissing, err = register(reg, m.permissionMissing); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector registered
// before it.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering cloud metrics: %w", err)
}
