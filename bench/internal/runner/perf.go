package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// errPerfOff says perf profiling was not asked for.
var errPerfOff = errors.New("perf profiling is off")

// perfRecord samples the CPU stacks of process pid for d with perf(1), at a
// frequency that stays cheap next to what it measures. The publisher does
// not serve /debug/pprof; perf profiles it from the outside.
func perfRecord(ctx context.Context, pid int, d time.Duration, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(out), err)
	}
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	secs := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	//nolint:gosec // G204: perf with arguments the benchmark composed.
	cmd := exec.CommandContext(ctx, "perf", "record", "--quiet", "-F", "997", "-g", "-p", strconv.Itoa(pid), "-o", out, "--", "sleep", secs)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("perf record: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// perfReport writes the flat profile of a recording beside it (.txt) and
// returns its top lines.
func perfReport(ctx context.Context, data string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	//nolint:gosec // G204: perf with arguments the benchmark composed.
	cmd := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "--percent-limit", "1", "-g", "none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("perf report: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.WriteFile(data+".txt", stdout.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("writing %s.txt: %w", data, err)
	}
	var top []string
	for line := range strings.Lines(stdout.String()) {
		line = strings.TrimRight(line, "\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// perf pads the symbol column to the longest name and appends
		// empty columns; keep "overhead [k/.] symbol".
		f := strings.Fields(line)
		for len(f) > 0 && f[len(f)-1] == "-" {
			f = f[:len(f)-1]
		}
		top = append(top, "    "+strings.Join(f, " "))
		if len(top) == 20 {
			break
		}
	}
	return strings.Join(top, "\n"), nil
}
