package runner

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/stats"
)

// Report writes the results: a table for people, then the notes, then one
// machine-readable line per case ("bench <case> N=<n> key=value ..."),
// which are the last lines of the output.
func (r *Results) Report(w io.Writer, cfg Config) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(tw, format, args...) }

	profile := "the benchmark's own"
	if cfg.Profile != "" {
		profile = "simulator profile " + cfg.Profile
	}
	p("\nModel (%s): each write keeps the VPC busy %v + %v × entries (≤%d entries per call), one write in flight per VPC; entries Pending at least %v; reads cost %v.\n",
		profile, cfg.Model.Base, cfg.Model.PerEntry, cfg.Model.MaxBatch, cfg.Model.Pending, cfg.ListLatency)
	if len(r.Cold) > 0 {
		p("\nCold start\tN\tpublisher\t(routes / conditions)\tupstream\t(routes / conditions)\tlower bound\tpublisher/bound\tspeed-up\n")
		for _, c := range r.Cold {
			p("\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.N, runCell(c.Publisher), splitCell(c.Publisher), runCell(c.Upstream), splitCell(c.Upstream),
				secs(c.Bound), ratioCell(c.Publisher, c.Bound), speedupCell(c))
		}
		p("\nCloud API calls\tN\tcontestant\tcalls by action\terrors\n")
		for _, c := range r.Cold {
			for _, run := range []struct {
				who string
				r   *ColdRun
			}{{whoPublisher, c.Publisher}, {whoUpstream, c.Upstream}} {
				if run.r != nil {
					p("\t%d\t%s\t%s\t%s\n", c.N, run.who, run.r.Calls, errorsCell(run.r.Errors))
				}
			}
		}
	}
	if len(r.Join) > 0 {
		p("\nJoin latency\tN\tcontestant\tsamples\tp50\tp99\tmax\ttarget p99\n")
		for _, j := range r.Join {
			p50, _ := stats.Percentile(j.Samples, 50)
			p99, _ := stats.Percentile(j.Samples, 99)
			p100, _ := stats.Percentile(j.Samples, 100)
			target := "-"
			if j.Target > 0 {
				target = secs(j.Target)
			}
			p("\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", j.N, j.Who, len(j.Samples), secs(p50), secs(p99), secs(p100), target)
		}
	}
	if len(r.Steady) > 0 {
		p("\nSteady state\tN\tcontestant\tperiods\tpasses\twrites/period\tlist calls/period\tlistings/period/table\n")
		for _, s := range r.Steady {
			passes := "-"
			if s.Passes >= 0 {
				passes = fmt.Sprintf("%.0f", s.Passes)
			}
			p("\t%d\t%s\t%.1f\t%s\t%.2f\t%.2f\t%.2f\n", s.N, s.Who, s.Periods, passes,
				float64(s.Calls.Writes())/s.Periods, listCalls(s)/s.Periods, listings(s))
		}
	}
	if len(r.Cost) > 0 {
		p("\nPublisher cost\tN\tCPU to converge\tCPU per resync\tpeak RSS\n")
		for _, c := range r.Cost {
			p("\t%d\t%s\t%s\t%.1f MiB\n", c.N, secs(c.CPU), resyncCell(c), mib(c.PeakRSS))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the results table: %w", err)
	}
	for _, n := range r.Notes {
		_, _ = fmt.Fprintf(w, "note: %s\n", n)
	}
	_, _ = fmt.Fprintln(w)
	for _, line := range r.Lines() {
		if _, err := fmt.Fprintln(w, line); err != nil {
			return fmt.Errorf("writing the results: %w", err)
		}
	}
	return nil
}

// Lines are the machine-readable results, one per case and size.
func (r *Results) Lines() []string {
	var out []string
	for _, c := range r.Cold {
		kv := []string{"bench cold", fmt.Sprintf("N=%d", c.N)}
		if c.Profile != "" {
			kv = append(kv, "profile="+c.Profile)
		}
		if c.Publisher != nil {
			kv = append(kv, "publisher_s="+runValue(c.Publisher))
		}
		if c.Upstream != nil {
			kv = append(kv, "upstream_s="+runValue(c.Upstream))
			if e := c.Upstream.Extrapolated(); e > 0 {
				kv = append(kv, fmt.Sprintf("upstream_extrapolated_s=%.1f", e.Seconds()))
			}
		}
		kv = append(kv, fmt.Sprintf("bound_s=%.1f", c.Bound.Seconds()))
		if c.Publisher != nil && c.Publisher.Outcome.Converged && c.Bound > 0 {
			o := c.Publisher.Outcome
			kv = append(kv, fmt.Sprintf("ratio_to_bound=%.2f routes_ratio_to_bound=%.2f", o.Elapsed.Seconds()/c.Bound.Seconds(), o.RoutesDone.Seconds()/c.Bound.Seconds()))
		}
		if s := speedupCell(c); s != "-" {
			kv = append(kv, "speedup="+strings.TrimSuffix(s, "×"))
			if e := c.Upstream.Extrapolated(); e > 0 {
				kv = append(kv, fmt.Sprintf("speedup_extrapolated=%.1f", e.Seconds()/c.Publisher.Outcome.Elapsed.Seconds()))
			}
		}
		for _, run := range []struct {
			who string
			r   *ColdRun
		}{{whoPublisher, c.Publisher}, {whoUpstream, c.Upstream}} {
			if run.r == nil {
				continue
			}
			if o := run.r.Outcome; o.Converged {
				kv = append(kv, fmt.Sprintf("%s_routes_s=%.1f %s_conditions_s=%.1f", run.who, o.RoutesDone.Seconds(), run.who, o.NodesDone.Seconds()))
			}
			kv = append(kv, fmt.Sprintf("%s_writes=%d %s_calls=%d", run.who, run.r.Calls.Writes(), run.who, total(run.r.Calls)))
		}
		out = append(out, strings.Join(kv, " "))
	}
	for _, j := range r.Join {
		p50, _ := stats.Percentile(j.Samples, 50)
		p99, _ := stats.Percentile(j.Samples, 99)
		prefix := ""
		if j.Who == whoUpstream {
			prefix = "upstream_"
		}
		line := fmt.Sprintf("bench join N=%d %sp50_s=%.2f %sp99_s=%.2f %ssamples=%d", j.N, prefix, p50.Seconds(), prefix, p99.Seconds(), prefix, len(j.Samples))
		if j.Target > 0 {
			line += fmt.Sprintf(" target_p99_s=%.2f", j.Target.Seconds())
		}
		out = append(out, line)
	}
	for _, s := range r.Steady {
		prefix := ""
		if s.Who == whoUpstream {
			prefix = "upstream_"
		}
		out = append(out, fmt.Sprintf("bench steady N=%d %swrites_per_resync=%.2f %slists_per_resync=%.2f %slist_calls_per_resync=%.2f %sresyncs=%.1f",
			s.N, prefix, float64(s.Calls.Writes())/s.Periods, prefix, listings(s), prefix, listCalls(s)/s.Periods, prefix, s.Periods))
	}
	for _, c := range r.Cost {
		line := fmt.Sprintf("bench cost N=%d cpu_s=%.2f peak_rss_mib=%.1f", c.N, c.CPU.Seconds(), mib(c.PeakRSS))
		if c.ResyncCPU >= 0 {
			line += fmt.Sprintf(" resync_cpu_ms=%.1f", ms(c.ResyncCPU))
		}
		out = append(out, line)
	}
	return out
}

// listCalls is the number of DescribeRouteEntryList calls of a window.
func listCalls(s SteadyResult) float64 { return float64(s.Calls.Get("DescribeRouteEntryList")) }

// listings converts list calls into full listings per table per period.
func listings(s SteadyResult) float64 {
	return listCalls(s) / s.Periods / float64(max(s.PagesPerListing, 1)) / float64(max(s.Tables, 1))
}

func runValue(r *ColdRun) string {
	d, exact := r.result()
	if exact {
		return fmt.Sprintf("%.1f", d.Seconds())
	}
	return fmt.Sprintf(">%.1f", d.Seconds())
}

func runCell(r *ColdRun) string {
	if r == nil {
		return "-"
	}
	d, exact := r.result()
	if exact {
		return secs(d)
	}
	cell := fmt.Sprintf("> %s (%d/%d routes)", secs(d), r.Outcome.Routes, r.Outcome.Total)
	if e := r.Extrapolated(); e > 0 {
		cell += fmt.Sprintf(", ~%s extrapolated", secs(e))
	}
	return cell
}

// resyncCell is the CPU of one resync, or n/a when it was not measured.
func resyncCell(c CostResult) string {
	if c.ResyncCPU < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", ms(c.ResyncCPU))
}

// splitCell shows when the last route became Available and when the last
// condition was cleared.
func splitCell(r *ColdRun) string {
	if r == nil || !r.Outcome.Converged {
		return "-"
	}
	return secs(r.Outcome.RoutesDone) + " / " + secs(r.Outcome.NodesDone)
}

func ratioCell(r *ColdRun, bound time.Duration) string {
	if r == nil || !r.Outcome.Converged || bound <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.Outcome.Elapsed.Seconds()/bound.Seconds())
}

// speedupCell is upstream time / publisher time, prefixed with ">" when the
// upstream run hit its bound.
func speedupCell(c *ColdResult) string {
	if c.Publisher == nil || c.Upstream == nil || !c.Publisher.Outcome.Converged || c.Publisher.Outcome.Elapsed <= 0 {
		return "-"
	}
	u, exact := c.Upstream.result()
	v := fmt.Sprintf("%.1f×", u.Seconds()/c.Publisher.Outcome.Elapsed.Seconds())
	if !exact {
		v = ">" + v
	}
	return v
}

func errorsCell(errs map[string]int) string {
	if len(errs) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, errs[k]))
	}
	return strings.Join(parts, ",")
}

func total(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
func ms(d time.Duration) float64  { return float64(d) / float64(time.Millisecond) }
func mib(b uint64) float64        { return float64(b) / (1 << 20) }
