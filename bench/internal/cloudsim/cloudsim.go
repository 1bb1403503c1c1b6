// Package cloudsim runs the Alibaba Cloud simulator in the benchmark's
// process with the benchmark's latency model, sized for a fleet of nodes,
// and reads back what the controllers under test did: which routes are
// Available and how many API calls of each action they made.
package cloudsim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// Write actions: each keeps the VPC busy for the model's write latency.
var writeActions = []string{"CreateRouteEntry", "CreateRouteEntries", "DeleteRouteEntry", "DeleteRouteEntries", "ModifyRouteEntry"}

// Read actions: each costs the model's fixed list latency.
var readActions = []string{"DescribeVpcs", "DescribeVSwitches", "DescribeRouteTableList", "DescribeRouteEntryList", "DescribeInstances"}

// IsWrite reports whether action writes route entries.
func IsWrite(action string) bool { return slices.Contains(writeActions, action) }

// Options size the simulated account and set the latency model.
type Options struct {
	// Fleet places the instances: member i gets instance Fleet.Member(i).
	Fleet kubelet.Fleet
	// Instances is how many members get a Running ECS instance.
	Instances int
	// Quota is the custom-entry quota of the route table (raised to fit).
	Quota int
	// WriteBase and WritePerEntry: a write of n entries keeps the VPC busy
	// (and its entries Pending) for WriteBase + n × WritePerEntry.
	WriteBase     time.Duration
	WritePerEntry time.Duration
	// EntryPending is how long written entries stay Pending at least
	// (alisim.Options.EntryPending); zero: as long as the busy window.
	EntryPending time.Duration
	// ListLatency is added to every read call.
	ListLatency time.Duration
	// AccessKeyID and AccessKeySecret are the account's key.
	AccessKeyID     string
	AccessKeySecret string
}

// Cloud is a running simulator.
type Cloud struct {
	Sim *alisim.Simulator
	// APIAddr is host:port of the VPC, ECS and STS API.
	APIAddr string
	// MetadataURL is the base URL of the instance metadata service.
	MetadataURL string
	Region      string
	VPCID       string
	TableID     string

	servers []*http.Server
}

// nodeVSwitchID is the vSwitch holding the fleet's instances.
const nodeVSwitchID = "vsw-2vcbench00000000001"

// Start builds the simulated account — the simulator's default VPC, plus a
// vSwitch for the fleet with one Running instance per member — and serves
// its API and metadata service on loopback.
func Start(o Options) (*Cloud, error) {
	if err := o.Fleet.Validate(o.Instances); err != nil {
		return nil, err
	}
	if o.WriteBase <= 0 || o.WritePerEntry < 0 || o.ListLatency < 0 {
		return nil, fmt.Errorf("invalid latency model: write %v + %v per entry, list %v", o.WriteBase, o.WritePerEntry, o.ListLatency)
	}
	st := alisim.DefaultState()
	if st.Region != o.Fleet.Region {
		return nil, fmt.Errorf("fleet region %s differs from the simulator's %s", o.Fleet.Region, st.Region)
	}
	st.VSwitches = append(st.VSwitches, alisim.VSwitch{
		ID: nodeVSwitchID, VPCID: alisim.DefaultVPCID, Zone: o.Fleet.Zone, CIDR: o.Fleet.NodeCIDR,
		RouteTableID: alisim.DefaultTableID,
	})
	for i := range o.Instances {
		m := o.Fleet.Member(i)
		st.Instances = append(st.Instances, alisim.Instance{
			ID: m.InstanceID, Name: m.Name, VSwitchID: nodeVSwitchID, VPCID: alisim.DefaultVPCID,
			Zone: o.Fleet.Zone, PrivateIP: m.InternalIP, Status: alisim.InstanceRunning,
		})
	}
	for i := range st.RouteTables {
		st.RouteTables[i].Quota = o.Quota
	}
	// A zero per-entry latency means "instantaneous" to the simulator only
	// when negative.
	perEntry := o.WritePerEntry
	if perEntry == 0 {
		perEntry = -1
	}
	sim, err := alisim.New(alisim.Options{
		AccessKeyID: o.AccessKeyID, AccessKeySecret: o.AccessKeySecret,
		State: st, WriteBase: o.WriteBase, WritePerEntry: perEntry, EntryPending: o.EntryPending,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the simulator: %w", err)
	}
	if o.ListLatency > 0 {
		for _, a := range readActions {
			sim.InjectFault(alisim.Fault{Action: a, Latency: o.ListLatency})
		}
	}
	c := &Cloud{Sim: sim, Region: st.Region, VPCID: alisim.DefaultVPCID, TableID: alisim.DefaultTableID}
	api, err := c.serve(sim.APIHandler())
	if err != nil {
		return nil, err
	}
	md, err := c.serve(sim.MetadataHandler())
	if err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	c.APIAddr, c.MetadataURL = api, "http://"+md
	return c, nil
}

func (c *Cloud) serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening for the simulator: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	c.servers = append(c.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), nil
}

// Stop closes the listeners.
func (c *Cloud) Stop(ctx context.Context) error {
	var errs []error
	for _, s := range c.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err, s.Close())
		}
	}
	return errors.Join(errs...)
}

// PublisherArgs are the cloud flags of vpc-route-publisher pointing at the
// simulator.
func (c *Cloud) PublisherArgs(credentialsDir string, quota int) []string {
	return []string{
		"--region=" + c.Region,
		"--vpc-id=" + c.VPCID,
		"--vpc-endpoint=" + c.APIAddr,
		"--ecs-endpoint=" + c.APIAddr,
		"--sts-endpoint=" + c.APIAddr,
		"--metadata-endpoint=" + c.MetadataURL,
		"--cloud-insecure-http",
		"--credentials-dir=" + credentialsDir,
		fmt.Sprintf("--route-table-quota=%d", quota),
	}
}

// Available returns, among want (destination → next hop instance), the
// destinations whose entry is Available with the wanted next hop.
func (c *Cloud) Available(want map[netip.Prefix]string) (map[netip.Prefix]bool, error) {
	entries, err := c.Sim.Routes(c.TableID)
	if err != nil {
		return nil, fmt.Errorf("reading the simulator's route table: %w", err)
	}
	out := make(map[netip.Prefix]bool, len(want))
	for _, e := range entries {
		if hop, ok := want[e.Destination]; ok && e.Status == alisim.StatusAvailable && e.NextHopID == hop {
			out[e.Destination] = true
		}
	}
	return out, nil
}

// CustomEntries returns the number of custom entries in the route table:
// what a listing of custom entries pages through.
func (c *Cloud) CustomEntries() (int, error) {
	entries, err := c.Sim.Routes(c.TableID)
	if err != nil {
		return 0, fmt.Errorf("reading the simulator's route table: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.Type == alisim.EntryTypeCustom {
			n++
		}
	}
	return n, nil
}

// Calls is a count of API calls per action (all result codes).
type Calls map[string]int

// Calls returns the API calls made so far, per action.
func (c *Cloud) Calls() Calls {
	out := Calls{}
	for action, codes := range c.Sim.Counters() {
		for _, n := range codes {
			out[action] += n
		}
	}
	return out
}

// Errors returns the failed API calls so far, as "Action/Code" → count.
func (c *Cloud) Errors() map[string]int {
	out := map[string]int{}
	for action, codes := range c.Sim.Counters() {
		for code, n := range codes {
			if code != "Success" {
				out[action+"/"+code] += n
			}
		}
	}
	return out
}

// Sub returns the calls made since before.
func (c Calls) Sub(before Calls) Calls {
	out := Calls{}
	for a, n := range c {
		if d := n - before[a]; d != 0 {
			out[a] = d
		}
	}
	return out
}

// Writes is the number of route write calls.
func (c Calls) Writes() int {
	n := 0
	for a, v := range c {
		if IsWrite(a) {
			n += v
		}
	}
	return n
}

// Get returns the calls of one action.
func (c Calls) Get(action string) int { return c[action] }

// String renders the counts as Action:n,Action:n sorted by action, or "none".
func (c Calls) String() string {
	if len(c) == 0 {
		return "none"
	}
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s:%d", a, c[a]))
	}
	return strings.Join(parts, ",")
}
