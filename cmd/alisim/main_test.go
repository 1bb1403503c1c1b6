package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// buildBinary compiles the command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "alisim")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs the binary and returns the addresses it prints.
func startBinary(t *testing.T, bin string, args ...string) (*exec.Cmd, map[string]string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting alisim: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	addrs := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(30 * time.Second)
	for len(addrs) < 3 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("alisim exited before printing its addresses; got %v", addrs)
			}
			name, addr, found := strings.Cut(line, "=")
			if !found {
				t.Fatalf("unparsable output line %q", line)
			}
			addrs[name] = addr
		case <-deadline:
			t.Fatalf("alisim printed only %v within 30s", addrs)
		}
	}
	return cmd, addrs
}

// stop sends SIGTERM and waits for a clean exit.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("alisim did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("alisim did not exit within 10s of SIGTERM")
	}
}

func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	stateFile := filepath.Join(t.TempDir(), "state.json")
	st := alisim.DefaultState()
	st.Region = "cn-hangzhou"
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, addrs := startBinary(t, bin, "--listen", "127.0.0.1:0", "--metadata-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--access-key-id", "id1", "--access-key-secret", "secret1", "--state", stateFile, "--write-base", "1ms")
	for _, name := range []string{"api", "metadata", "admin"} {
		if !strings.HasPrefix(addrs[name], "127.0.0.1:") {
			t.Fatalf("%s address = %q, want 127.0.0.1:PORT", name, addrs[name])
		}
	}
	client, err := vpc.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithScheme("HTTP"), credentials.NewAccessKeyCredential("id1", "secret1"))
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = addrs["api"]
	resp, err := client.DescribeVpcs(vpc.CreateDescribeVpcsRequest())
	if err != nil {
		t.Fatalf("DescribeVpcs against the binary: %v", err)
	}
	if len(resp.Vpcs.Vpc) != 1 || resp.Vpcs.Vpc[0].RegionId != "cn-hangzhou" || resp.Vpcs.Vpc[0].VpcId != alisim.DefaultVPCID {
		t.Fatalf("DescribeVpcs = %+v, want the state file's VPC in cn-hangzhou", resp.Vpcs.Vpc)
	}
	adminResp, err := http.Get("http://" + addrs["admin"] + "/admin/counters")
	if err != nil {
		t.Fatal(err)
	}
	defer adminResp.Body.Close()
	var counters map[string]map[string]int
	if err := json.NewDecoder(adminResp.Body).Decode(&counters); err != nil {
		t.Fatal(err)
	}
	if counters["DescribeVpcs"]["Success"] != 1 {
		t.Fatalf("admin counters = %v, want one successful DescribeVpcs", counters)
	}
	stop(t, cmd)
}

// TestBinaryEnforcesRAMPolicy starts the binary with the shipped policy
// on its key: what the policy grants works, the rest is refused.
func TestBinaryEnforcesRAMPolicy(t *testing.T) {
	bin := buildBinary(t)
	cmd, addrs := startBinary(t, bin, "--listen", "127.0.0.1:0", "--metadata-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--access-key-id", "id1", "--access-key-secret", "secret1", "--ram-policy", filepath.Join("..", "..", "deploy", "ram-policy.json"),
		"--vpc-denial-code", alisim.CodeForbbiden)
	client, err := vpc.NewClientWithOptions(alisim.DefaultRegion, sdk.NewConfig().WithScheme("HTTP"), credentials.NewAccessKeyCredential("id1", "secret1"))
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = addrs["api"]
	if _, err := client.DescribeVpcs(vpc.CreateDescribeVpcsRequest()); err != nil {
		t.Fatalf("DescribeVpcs is granted by the shipped policy: %v", err)
	}
	_, err = client.DescribeVSwitches(vpc.CreateDescribeVSwitchesRequest())
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) || se.ErrorCode() != alisim.CodeForbbiden || se.HttpStatus() != http.StatusForbidden {
		t.Fatalf("DescribeVSwitches = %v, want 403 %s", err, alisim.CodeForbbiden)
	}
	stop(t, cmd)
}

func TestBinaryRejectsBadFlags(t *testing.T) {
	bin := buildBinary(t)
	badPolicy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(badPolicy, []byte(`{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"*","Resource":"*"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--access-key-id", "id", "--access-key-secret", "s", "--ram-policy", badPolicy},
		{"--ram-policy", filepath.Join("..", "..", "deploy", "ram-policy.json")},
		{"--access-key-id", "only-id"},
		{"--throttle", "DescribeVpcs=fast"},
		{"--profile", "slow"},
		{"--ip-version-encoding", "binary"},
		{"--no-such-flag"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ALIBABA_CLOUD_ACCESS_KEY_ID=", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("alisim %v: err = %v (output %q), want exit status 2", args, err, out)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stderr strings.Builder
	if err := run(t.Context(), []string{"-h"}, io.Discard, &stderr); !errors.Is(err, errHelp) {
		t.Fatalf("run -h = %v, want the help sentinel", err)
	}
	if !strings.Contains(stderr.String(), "-write-base") {
		t.Fatalf("help does not list the flags:\n%s", stderr.String())
	}
}

func TestParseThrottles(t *testing.T) {
	got, err := parseThrottles("DescribeRouteEntryList=10/20, *=100/100")
	if err != nil {
		t.Fatal(err)
	}
	want := []alisim.Throttle{{Action: "DescribeRouteEntryList", QPS: 10, Burst: 20}, {Action: "*", QPS: 100, Burst: 100}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseThrottles = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"X", "X=1", "X=0/1", "X=1/0", "=1/1"} {
		if _, err := parseThrottles(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseThrottles(%q) error = %v, want a usage error", bad, err)
		}
	}
}

func TestProfileFlags(t *testing.T) {
	fast, err := alisim.Profile(alisim.ProfileFast)
	if err != nil {
		t.Fatal(err)
	}
	realistic, err := alisim.Profile(alisim.ProfileRealistic)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want alisim.LatencyModel
	}{
		{nil, fast},
		{[]string{"--profile", "realistic"}, realistic},
		{[]string{"--profile", "realistic", "--write-base", "2s", "--entry-pending", "3s"},
			alisim.LatencyModel{WriteBase: 2 * time.Second, WritePerEntry: realistic.WritePerEntry, EntryPending: 3 * time.Second}},
	} {
		c, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.simOptions()
		if err != nil {
			t.Fatal(err)
		}
		if got := (alisim.LatencyModel{WriteBase: o.WriteBase, WritePerEntry: o.WritePerEntry, EntryPending: o.EntryPending}); got != tc.want {
			t.Errorf("alisim %v: latency %+v, want %+v", tc.args, got, tc.want)
		}
	}
}
