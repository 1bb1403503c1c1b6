package alisim_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func TestFakeClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := alisim.NewFakeClock(start)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestScaledClockRunsFaster(t *testing.T) {
	c := alisim.NewScaledClock(100)
	wallStart, simStart := time.Now(), c.Now()
	waitFor(t, "10ms of wall time", func() bool { return time.Since(wallStart) >= 10*time.Millisecond })
	simElapsed, wallElapsed := c.Now().Sub(simStart), time.Since(wallStart)
	// 100× faster, with slack for the reads not being simultaneous.
	if simElapsed < 50*wallElapsed {
		t.Fatalf("scaled clock advanced %v in %v of wall time, want about 100×", simElapsed, wallElapsed)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggerNeverLogsSecrets(t *testing.T) {
	var buf syncBuffer
	ts := start(t, alisim.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	creds, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpcClient(t, ts, testCred()).DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatal(err)
	}
	sts := credentials.NewStsTokenCredential(creds.AccessKeyID, creds.AccessKeySecret, creds.SecurityToken)
	if _, err := vpcClient(t, ts, sts).DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatal(err)
	}
	_, _ = vpcClient(t, ts, credentialsWithSecret("wrong")).DescribeRouteEntryList(describeReq())
	out := buf.String()
	if strings.Count(out, "action=DescribeRouteEntryList") != 3 || !strings.Contains(out, "accessKey=temporary") ||
		!strings.Contains(out, "code="+alisim.CodeSignatureDoesNotMatch) {
		t.Fatalf("log does not record the calls:\n%s", out)
	}
	for _, secret := range []string{testKeySecret, creds.AccessKeySecret, creds.SecurityToken, "wrong"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains a secret:\n%s", out)
		}
	}
}

func TestScaledClockKeepsRequestTimestampsValid(t *testing.T) {
	clock := alisim.NewScaledClock(1e6) // a simulated day passes in under 0.1s
	ts := start(t, alisim.Options{Clock: clock})
	waitFor(t, "a simulated hour", func() bool { return time.Until(clock.Now()) > time.Hour })
	if _, err := vpcClient(t, ts, testCred()).DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("SDK call with the scaled clock far ahead of the wall clock: %v", err)
	}
}
