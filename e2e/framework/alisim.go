package framework

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// AlisimOptions configure the simulator process.
type AlisimOptions struct {
	// Bin is the alisim binary.
	Bin string
	// Dir receives the log and the credentials directory.
	Dir string
	// RAMPolicy is a RAM policy file (--ram-policy) for the harness's key;
	// empty lets the key call everything.
	RAMPolicy string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Alisim is a running simulator process and a client of its admin API.
type Alisim struct {
	*Process
	APIAddr      string
	MetadataAddr string
	AdminURL     string
	Region       string
	VPCID        string
	TableID      string
	// AccessKeyID is the key the simulator accepts; its secret is only in
	// CredentialsDir (never in logs or errors).
	AccessKeyID string
	// CredentialsDir holds the key in --credentials-dir layout.
	CredentialsDir string

	accessKeySecret string
	// policy is the RAM policy the key started with (nil: none).
	policy  *alisim.Policy
	initial *alisim.State
	client  *http.Client
}

// StartAlisim starts the simulator on free loopback ports with a fresh random
// access key and waits until its admin API answers.
func StartAlisim(ctx context.Context, o AlisimOptions) (*Alisim, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	id, err := randomHex("LTAI", 8)
	if err != nil {
		return nil, err
	}
	secret, err := randomHex("", 15)
	if err != nil {
		return nil, err
	}
	s := &Alisim{
		APIAddr:         addrs[0],
		MetadataAddr:    addrs[1],
		AdminURL:        "http://" + addrs[2],
		Region:          alisim.DefaultRegion,
		VPCID:           alisim.DefaultVPCID,
		TableID:         alisim.DefaultTableID,
		AccessKeyID:     id,
		CredentialsDir:  filepath.Join(o.Dir, "credentials"),
		accessKeySecret: secret,
		client:          &http.Client{Timeout: 10 * time.Second},
	}
	if err := WriteCredentials(s.CredentialsDir, id, secret); err != nil {
		return nil, err
	}
	args := append([]string{
		"--listen=" + s.APIAddr,
		"--metadata-listen=" + s.MetadataAddr,
		"--admin-listen=" + addrs[2],
		"--access-key-id=" + id,
		"--access-key-secret=" + secret,
		"-v",
	}, o.ExtraArgs...)
	if o.RAMPolicy != "" {
		raw, err := os.ReadFile(o.RAMPolicy)
		if err != nil {
			return nil, fmt.Errorf("reading the RAM policy: %w", err)
		}
		if s.policy, err = alisim.ParsePolicy(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", o.RAMPolicy, err)
		}
		args = append(args, "--ram-policy="+o.RAMPolicy)
	}
	s.Process, err = StartProcess("alisim", o.Dir, o.Bin, args, nil)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.Process, 30*time.Second, func(ctx context.Context) error {
		for _, a := range []string{s.APIAddr, s.MetadataAddr} {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("dialing %s: %w", a, err)
			}
			_ = c.Close()
		}
		st, err := s.State(ctx)
		if err != nil {
			return err
		}
		s.initial = st
		return nil
	}); err != nil {
		_ = s.Process.Stop(DefaultStopTimeout)
		return nil, err
	}
	return s, nil
}

// Stop stops the simulator process.
func (s *Alisim) Stop() error {
	if s.Process == nil {
		return nil
	}
	return s.Process.Stop(DefaultStopTimeout)
}

// Reset restores the state the simulator started with and clears faults,
// throttles, the forced-busy flag and the call counters, so that scenarios
// can share one simulator.
func (s *Alisim) Reset(ctx context.Context) error {
	if err := s.ClearFaults(ctx); err != nil {
		return err
	}
	ths, err := s.Throttles(ctx)
	if err != nil {
		return err
	}
	for _, t := range ths {
		if err := s.SetThrottle(ctx, t.Action, 0, 0); err != nil {
			return err
		}
	}
	if err := s.SetBusy(ctx, false); err != nil {
		return err
	}
	if err := s.do(ctx, http.MethodPut, "/admin/state", s.initial, nil); err != nil {
		return err
	}
	return s.ResetCounters(ctx)
}

// State returns the whole simulated account.
func (s *Alisim) State(ctx context.Context) (*alisim.State, error) {
	var st alisim.State
	if err := s.do(ctx, http.MethodGet, "/admin/state", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Routes lists the entries of a table (empty: the default system table),
// system entries included.
func (s *Alisim) Routes(ctx context.Context, table string) ([]alisim.RouteEntry, error) {
	if table == "" {
		table = s.TableID
	}
	var out []alisim.RouteEntry
	if err := s.do(ctx, http.MethodGet, "/admin/routes?table="+url.QueryEscape(table), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CustomRoutes lists only the custom entries of a table.
func (s *Alisim) CustomRoutes(ctx context.Context, table string) ([]alisim.RouteEntry, error) {
	all, err := s.Routes(ctx, table)
	if err != nil {
		return nil, err
	}
	var out []alisim.RouteEntry
	for _, e := range all {
		if e.Type == alisim.EntryTypeCustom {
			out = append(out, e)
		}
	}
	return out, nil
}

// PutRoute adds an entry out of band, as a user of the console would.
func (s *Alisim) PutRoute(ctx context.Context, e alisim.RouteEntry) (alisim.RouteEntry, error) {
	if e.TableID == "" {
		e.TableID = s.TableID
	}
	var out alisim.RouteEntry
	err := s.do(ctx, http.MethodPost, "/admin/routes", e, &out)
	return out, err
}

// ModifyRoute changes an entry out of band.
func (s *Alisim) ModifyRoute(ctx context.Context, id string, edit alisim.RouteEdit) error {
	return s.do(ctx, http.MethodPatch, "/admin/routes/"+url.PathEscape(id), edit, nil)
}

// DeleteRoute removes an entry out of band.
func (s *Alisim) DeleteRoute(ctx context.Context, id string) error {
	return s.do(ctx, http.MethodDelete, "/admin/routes/"+url.PathEscape(id), nil, nil)
}

// InjectFault adds a fault to the simulated API.
func (s *Alisim) InjectFault(ctx context.Context, f alisim.Fault) error {
	return s.do(ctx, http.MethodPost, "/admin/faults", f, nil)
}

// Faults returns the active faults; a fault with a Count disappears once it
// has hit that many calls.
func (s *Alisim) Faults(ctx context.Context) ([]alisim.Fault, error) {
	var out []alisim.Fault
	err := s.do(ctx, http.MethodGet, "/admin/faults", nil, &out)
	return out, err
}

// ClearFaults removes every fault.
func (s *Alisim) ClearFaults(ctx context.Context) error {
	return s.do(ctx, http.MethodDelete, "/admin/faults", nil, nil)
}

// Throttles returns the configured per-action limits.
func (s *Alisim) Throttles(ctx context.Context) ([]alisim.Throttle, error) {
	var out []alisim.Throttle
	err := s.do(ctx, http.MethodGet, "/admin/throttles", nil, &out)
	return out, err
}

// SetThrottle limits action ("*": every action); qps 0 removes the limit.
func (s *Alisim) SetThrottle(ctx context.Context, action string, qps float64, burst int) error {
	return s.do(ctx, http.MethodPut, "/admin/throttles", alisim.Throttle{Action: action, QPS: qps, Burst: burst}, nil)
}

// SetBusy forces the VPC busy (every route write fails) or releases it.
func (s *Alisim) SetBusy(ctx context.Context, busy bool) error {
	return s.do(ctx, http.MethodPut, "/admin/vpcs/"+url.PathEscape(s.VPCID)+"/busy", map[string]bool{"busy": busy}, nil)
}

// SetQuota sets the custom entry quota of a table (empty: the default table).
func (s *Alisim) SetQuota(ctx context.Context, table string, quota int) error {
	if table == "" {
		table = s.TableID
	}
	return s.do(ctx, http.MethodPut, "/admin/tables/"+url.PathEscape(table)+"/quota", map[string]int{"quota": quota}, nil)
}

// AddInstances creates n Running instances in the default vSwitch.
func (s *Alisim) AddInstances(ctx context.Context, n int) ([]alisim.Instance, error) {
	var out []alisim.Instance
	err := s.do(ctx, http.MethodPost, "/admin/instances", map[string]any{"count": n}, &out)
	return out, err
}

// SetAccessKeyDisabled disables or re-enables the harness's access key,
// which is how the tests revoke credentials. The key keeps its RAM policy.
func (s *Alisim) SetAccessKeyDisabled(ctx context.Context, disabled bool) error {
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	k := alisim.AccessKey{ID: s.AccessKeyID, Secret: s.accessKeySecret}
	for _, ak := range st.AccessKeys {
		if ak.ID == s.AccessKeyID {
			k = ak
		}
	}
	k.Disabled = disabled
	return s.do(ctx, http.MethodPost, "/admin/accesskeys", k, nil)
}

// Policy returns the RAM policy the harness's key started with (the
// shipped deploy/ram-policy.json in the suite), nil without one. Reset
// restores it.
func (s *Alisim) Policy() *alisim.Policy { return s.policy }

// SetPolicy replaces the RAM policy of the harness's key; nil removes it
// (every action allowed).
func (s *Alisim) SetPolicy(ctx context.Context, p *alisim.Policy) error {
	path := "/admin/accesskeys/" + url.PathEscape(s.AccessKeyID) + "/policy"
	if p == nil {
		return s.do(ctx, http.MethodDelete, path, nil, nil)
	}
	return s.do(ctx, http.MethodPut, path, p, nil)
}

// ReleaseInstance releases an ECS instance; entries routed to it stay.
func (s *Alisim) ReleaseInstance(ctx context.Context, id string) error {
	return s.do(ctx, http.MethodDelete, "/admin/instances/"+url.PathEscape(id), nil, nil)
}

// Counters returns the API calls per action and result code.
func (s *Alisim) Counters(ctx context.Context) (map[string]map[string]int, error) {
	var out map[string]map[string]int
	err := s.do(ctx, http.MethodGet, "/admin/counters", nil, &out)
	return out, err
}

// ResetCounters zeroes the API call counters.
func (s *Alisim) ResetCounters(ctx context.Context) error {
	return s.do(ctx, http.MethodDelete, "/admin/counters", nil, nil)
}

// WriteValidCredentials (re)writes the accepted key into dir.
func (s *Alisim) WriteValidCredentials(dir string) error {
	return WriteCredentials(dir, s.AccessKeyID, s.accessKeySecret)
}

func (s *Alisim) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("alisim admin %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading alisim admin %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("alisim admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding alisim admin %s %s: %w", method, path, err)
		}
	}
	return nil
}

func randomHex(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating random identifier: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
