package procstat

import (
	"os"
	"testing"
	"time"
)

func TestReadFixture(t *testing.T) {
	s, err := read("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	// utime 1234 + stime 567 ticks at 100 Hz.
	if want := 18010 * time.Millisecond; s.CPU != want {
		t.Errorf("CPU = %v, want %v", s.CPU, want)
	}
	if want := uint64(51234 * 1024); s.PeakRSS != want {
		t.Errorf("PeakRSS = %d, want %d", s.PeakRSS, want)
	}
	if want := uint64(40960 * 1024); s.RSS != want {
		t.Errorf("RSS = %d, want %d", s.RSS, want)
	}
}

func TestReadSelf(t *testing.T) {
	// Burn some CPU so that the reading cannot be zero.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.PeakRSS == 0 || s.RSS == 0 || s.RSS > s.PeakRSS {
		t.Errorf("implausible sample of this process: %+v", s)
	}
}

func TestMalformed(t *testing.T) {
	for name, stat := range map[string]string{
		"no command name": "4242 vpc S 1",
		"too few fields":  "4242 (vpc) S 1 2 3",
		"bad utime":       "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5 0 0",
	} {
		if _, err := parseStat([]byte(stat)); err == nil {
			t.Errorf("%s: parseStat(%q) succeeded", name, stat)
		}
	}
	for name, status := range map[string]string{
		"missing": "Name:\tx\nVmRSS:\t1 kB\n",
		"no unit": "VmHWM:\t12\n",
		"not int": "VmHWM:\tx kB\n",
	} {
		if _, err := statusBytes([]byte(status), "VmHWM"); err == nil {
			t.Errorf("%s: statusBytes(%q) succeeded", name, status)
		}
	}
	if _, err := Read(-1); err == nil {
		t.Error("Read(-1) succeeded")
	}
}
