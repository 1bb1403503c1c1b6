package framework

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a /metrics endpoint.
type Metrics map[string]*dto.MetricFamily

// ScrapeMetrics fetches and parses the Prometheus text exposition at url.
func ScrapeMetrics(ctx context.Context, url string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics of %s: %w", url, err)
	}
	return Metrics(families), nil
}

// Value returns the value of the sample of family name whose labels include
// every pair of labels (gauge, counter or untyped; a histogram's sample
// count), and whether such a sample exists. When several samples match, their
// values are summed, so Value("x_total", nil) is the family's total.
func (m Metrics) Value(name string, labels map[string]string) (float64, bool) {
	f, ok := m[name]
	if !ok {
		return 0, false
	}
	var (
		sum   float64
		found bool
	)
	for _, mt := range f.GetMetric() {
		if !hasLabels(mt, labels) {
			continue
		}
		found = true
		switch {
		case mt.GetGauge() != nil:
			sum += mt.GetGauge().GetValue()
		case mt.GetCounter() != nil:
			sum += mt.GetCounter().GetValue()
		case mt.GetUntyped() != nil:
			sum += mt.GetUntyped().GetValue()
		case mt.GetHistogram() != nil:
			sum += float64(mt.GetHistogram().GetSampleCount())
		case mt.GetSummary() != nil:
			sum += float64(mt.GetSummary().GetSampleCount())
		}
	}
	return sum, found
}

// Get is Value without the presence flag: a missing series reads as 0.
func (m Metrics) Get(name string, labels map[string]string) float64 {
	v, _ := m.Value(name, labels)
	return v
}

// Series lists the label sets and values of family name, sorted, for
// messages and the demo.
func (m Metrics) Series(name string) []string {
	f, ok := m[name]
	if !ok {
		return nil
	}
	var out []string
	for _, mt := range f.GetMetric() {
		var ls []string
		for _, l := range mt.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v, _ := Metrics{name: &dto.MetricFamily{Metric: []*dto.Metric{mt}}}.Value(name, nil)
		out = append(out, fmt.Sprintf("{%s} %g", strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	return out
}

func hasLabels(mt *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range mt.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
