// Package procstat reads a process's CPU time and memory high-water mark from
// /proc, so that the benchmark can measure a child process while it runs
// (rusage is only available once the child has exited).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel fixes it at 100 on every architecture Go supports on Linux
// (sysconf(_SC_CLK_TCK) returns this constant).
const clockTicks = 100

// Sample is one reading of a process's resource use.
type Sample struct {
	// CPU is user + system time of every thread of the process so far.
	CPU time.Duration
	// PeakRSS is VmHWM, the highest resident set size the process has had.
	PeakRSS uint64
	// RSS is VmRSS, the resident set size now.
	RSS uint64
}

// Read samples process pid.
func Read(pid int) (Sample, error) {
	return read(fmt.Sprintf("/proc/%d", pid))
}

func read(dir string) (Sample, error) {
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Sample{}, fmt.Errorf("reading process stat: %w", err)
	}
	cpu, err := parseStat(stat)
	if err != nil {
		return Sample{}, err
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Sample{}, fmt.Errorf("reading process status: %w", err)
	}
	s := Sample{CPU: cpu}
	if s.PeakRSS, err = statusBytes(status, "VmHWM"); err != nil {
		return Sample{}, err
	}
	if s.RSS, err = statusBytes(status, "VmRSS"); err != nil {
		return Sample{}, err
	}
	return s, nil
}

// parseStat returns utime+stime from the contents of /proc/PID/stat. The
// command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed process stat: no command name")
	}
	// After ") " come fields 3 (state) onwards; utime and stime are fields 14 and 15.
	fields := strings.Fields(string(stat[end+1:]))
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("malformed process stat: %d fields after the command name", len(fields))
	}
	var ticks uint64
	for _, i := range []int{utimeIdx, stimeIdx} {
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed process stat field %d: %w", i+3, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// statusBytes returns a "Key:   1234 kB" line of /proc/PID/status in bytes.
func statusBytes(status []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed process status line %q", strings.TrimSpace(line))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed process status line %q: %w", strings.TrimSpace(line), err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("process status has no %s line", key)
}
