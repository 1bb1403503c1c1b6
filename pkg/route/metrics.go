package route

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

const metricsNamespace = "vpc_route_publisher"

// Route entry states, the values of the state label of
// vpc_route_publisher_route_entries.
const (
	EntriesDesired     = "desired"
	EntriesPresent     = "present"
	EntriesMissing     = "missing"
	EntriesUnexpected  = "unexpected"
	EntriesConflicting = "conflicting"
	EntriesPending     = "pending"
	EntriesBlackhole   = "blackhole"
	// EntriesSourceDestCheck are entries present and Available whose next
	// hop's ENI drops the traffic (source/destination check on).
	EntriesSourceDestCheck = "source_dest_check"
)

var entryStates = []string{EntriesDesired, EntriesPresent, EntriesMissing, EntriesUnexpected, EntriesConflicting, EntriesPending, EntriesBlackhole, EntriesSourceDestCheck}

// Metrics are the controller's Prometheus metrics. Build them once per
// registry with NewMetrics; the controller keeps them up to date and deletes
// the series of route tables that are no longer selected.
type Metrics struct {
	RouteEntries       *prometheus.GaugeVec
	QuotaUsed          *prometheus.GaugeVec
	QuotaLimit         *prometheus.GaugeVec
	Problems           *prometheus.GaugeVec
	ReconcileDuration  prometheus.Histogram
	Reconciles         *prometheus.CounterVec
	Convergence        prometheus.Histogram
	RouteWrites        *prometheus.CounterVec
	LastSuccessfulSync prometheus.Gauge
	Leader             prometheus.Gauge
	SafetyValveTripped *prometheus.GaugeVec
	SafetyValveTrips   *prometheus.CounterVec
	SafetyValveBase    prometheus.Gauge
	SafetyValveBudget  prometheus.Gauge
	DryRun             prometheus.Gauge

	reg       prometheus.Registerer
	mu        sync.Mutex
	tables    map[string]bool
	reasons   map[string]bool
	workqueue *workqueueMetrics
}

// NewMetrics creates the metrics and registers them, along with the
// client-go workqueue metrics of the controller's queue, into reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		RouteEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "route_entries",
			Help: "Route entries per route table by state: desired, present (in sync), missing, unexpected (owned but not desired), conflicting, pending, blackhole (next hop stopped or released), source_dest_check (present but the next hop's ENI has the source/destination check on, so it carries no traffic).",
		}, []string{"table", "state"}),
		QuotaUsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "route_table_quota_used",
			Help: "Custom route entries present in the route table, whoever owns them.",
		}, []string{"table"}),
		QuotaLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "route_table_quota_limit",
			Help: "Maximum number of custom route entries the route table accepts.",
		}, []string{"table"}),
		Problems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "problems",
			Help: "Objects with a problem keeping them from a correct route, by reason.",
		}, []string{"reason"}),
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "reconcile_duration_seconds",
			Help:    "Duration of a reconcile pass (read, plan, write, node conditions).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 15),
		}),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "reconciles_total",
			Help: "Reconcile passes by result: success, partial (the pass ran but some entries failed: quota, refused writes, instance lookups) or error (the pass could not run: tables, entries or desired state unreadable, or interrupted).",
		}, []string{"result"}),
		Convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "route_convergence_seconds",
			Help:    "Time from a node's pod CIDR being first observed to its route being Available in every route table.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		RouteWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "route_writes_total",
			Help: "Route entry writes by operation (create, delete, adopt) and result (success or error class).",
		}, []string{"operation", "result"}),
		LastSuccessfulSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "last_successful_sync_timestamp_seconds",
			Help: "Unix time of the end of the last reconcile pass that ran (result success or partial): the sources and tables were read and the writes made, even if some entries failed.",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "leader",
			Help: "1 when this replica holds the leader lease.",
		}),
		SafetyValveTripped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "safety_valve_tripped",
			Help: "1 while the deletion safety valve withholds deletions of this cause: node-deleted or instance-released (more than --max-delete-ratio of the owned entries in one pass), not-desired (more than --max-delete-ratio of the owned entries at the start of the --safety-valve-window).",
		}, []string{"cause"}),
		SafetyValveTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "safety_valve_trips_total",
			Help: "Times the deletion safety valve tripped, by cause (counted when it starts withholding).",
		}, []string{"cause"}),
		SafetyValveBase: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "safety_valve_window_base",
			Help: "Owned entries at the start of the safety valve's window, the base of its not-desired budget.",
		}),
		SafetyValveBudget: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "safety_valve_budget_remaining",
			Help: "Deletions of routes of existing nodes (cause not-desired) the safety valve still allows in its window; -1 when the valve is disabled.",
		}),
		DryRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "dry_run",
			Help: "1 when the controller runs in dry-run mode and never writes.",
		}),
		reg:     reg,
		tables:  map[string]bool{},
		reasons: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{
		m.RouteEntries, m.QuotaUsed, m.QuotaLimit, m.Problems, m.ReconcileDuration, m.Reconciles,
		m.Convergence, m.RouteWrites, m.LastSuccessfulSync, m.Leader, m.SafetyValveTripped,
		m.SafetyValveTrips, m.SafetyValveBase, m.SafetyValveBudget, m.DryRun,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.workqueue = &workqueueMetrics{reg: reg}
	// Make the result series exist from the start so that rate() and
	// absent() alerts work before the first failure.
	for _, r := range []string{ResultSuccess, ResultPartial, ResultError} {
		m.Reconciles.WithLabelValues(r)
	}
	for _, cause := range Causes {
		m.SafetyValveTripped.WithLabelValues(cause)
		m.SafetyValveTrips.WithLabelValues(cause)
	}
	return m, nil
}

// SetLeader records whether this replica leads.
func (m *Metrics) SetLeader(leading bool) { m.Leader.Set(boolFloat(leading)) }

// tableCounts are the per-table figures published by setTables.
type tableCounts struct {
	Entries   map[string]int // by Entries* state
	QuotaUsed int
	Quota     int
}

// setTables publishes the per-table gauges and deletes the series of tables
// absent from counts.
func (m *Metrics) setTables(counts map[string]tableCounts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t := range m.tables {
		if _, ok := counts[t]; !ok {
			m.RouteEntries.DeletePartialMatch(prometheus.Labels{"table": t})
			m.QuotaUsed.DeleteLabelValues(t)
			m.QuotaLimit.DeleteLabelValues(t)
			delete(m.tables, t)
		}
	}
	for t, c := range counts {
		m.tables[t] = true
		for _, s := range entryStates {
			m.RouteEntries.WithLabelValues(t, s).Set(float64(c.Entries[s]))
		}
		m.QuotaUsed.WithLabelValues(t).Set(float64(c.QuotaUsed))
		if c.Quota > 0 {
			m.QuotaLimit.WithLabelValues(t).Set(float64(c.Quota))
		} else {
			m.QuotaLimit.DeleteLabelValues(t)
		}
	}
}

// setProblems publishes the number of objects with a problem, by reason,
// and deletes the series of reasons that went away.
func (m *Metrics) setProblems(problems []Problem) {
	m.mu.Lock()
	defer m.mu.Unlock()
	objects := map[string]map[string]bool{}
	for _, p := range problems {
		if objects[p.Reason] == nil {
			objects[p.Reason] = map[string]bool{}
		}
		objects[p.Reason][p.Object] = true
	}
	for r := range m.reasons {
		if _, ok := objects[r]; !ok {
			m.Problems.DeleteLabelValues(r)
			delete(m.reasons, r)
		}
	}
	for r, objs := range objects {
		m.reasons[r] = true
		m.Problems.WithLabelValues(r).Set(float64(len(objs)))
	}
}

// forgetLeaderState removes what only the leader knows (drift, quota,
// problems, the valve): a replica that lost the lease must not keep
// exporting its last values, which alerts taking the max over replicas
// would read as current.
func (m *Metrics) forgetLeaderState() {
	m.setTables(nil)
	m.setProblems(nil)
	m.setValve(ValveState{}, nil)
}

// setValve publishes the valve's state: which causes it withholds and the
// budget left in its window.
func (m *Metrics) setValve(v ValveState, tripped map[string]bool) {
	for _, cause := range Causes {
		m.SafetyValveTripped.WithLabelValues(cause).Set(boolFloat(tripped[cause]))
	}
	m.SafetyValveBase.Set(float64(v.Base))
	m.SafetyValveBudget.Set(float64(v.Remaining))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// workqueueMetrics is a workqueue.MetricsProvider backed by our registerer.
// It is handed to the controller's queue through its config rather than
// through the process-global workqueue.SetProvider, so every Metrics (one
// per test) gets its own series. Collectors already registered (a second
// queue of the same name on the same registry) are reused.
type workqueueMetrics struct {
	reg prometheus.Registerer
}

var _ workqueue.MetricsProvider = (*workqueueMetrics)(nil)

func (w *workqueueMetrics) register(c prometheus.Collector) prometheus.Collector {
	if err := w.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector
		}
		// Registration only fails on a programming error (bad name or
		// help); the queue still works, its metric just is not exported.
		return c
	}
	return c
}

func (w *workqueueMetrics) gauge(name, help string) *prometheus.GaugeVec {
	c := w.register(prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: name, Help: help}, []string{"name"}))
	return c.(*prometheus.GaugeVec)
}

func (w *workqueueMetrics) counter(name, help string) *prometheus.CounterVec {
	c := w.register(prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: name, Help: help}, []string{"name"}))
	return c.(*prometheus.CounterVec)
}

func (w *workqueueMetrics) histogram(name, help string) *prometheus.HistogramVec {
	c := w.register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: name, Help: help,
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 10),
	}, []string{"name"}))
	return c.(*prometheus.HistogramVec)
}

func (w *workqueueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return w.gauge("depth", "Current depth of workqueue.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return w.counter("adds_total", "Total number of adds handled by workqueue.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return w.histogram("queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return w.histogram("work_duration_seconds", "How long in seconds processing an item from workqueue takes.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return w.gauge("unfinished_work_seconds", "How many seconds of work has done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return w.gauge("longest_running_processor_seconds", "How many seconds has the longest running processor for workqueue been running.").WithLabelValues(name)
}

func (w *workqueueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return w.counter("retries_total", "Total number of retries handled by workqueue.").WithLabelValues(name)
}
