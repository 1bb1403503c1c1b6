package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// maxInstanceIDs is the most IDs DescribeInstances accepts per call (and its
// largest page).
const maxInstanceIDs = 100

// ipLookupTTL is how long an InternalIP → instance mapping found in ECS is
// reused. Private IPs are reused only after an instance is released, and a
// mapping to an instance that Status finds released is dropped at once.
const ipLookupTTL = 10 * time.Minute

// Instances maps nodes to ECS instances of one VPC and reports their status.
//
// It never reports an instance released on one empty answer: ECS answers a
// key without ecs:DescribeInstances with HTTP 200 and an empty list, and a
// lookup can miss an instance for reasons of its own. An instance missing
// from a by-ID lookup is reported route.InstanceAbsent until it has been
// missing for the release grace, with every RAM permission proven at each
// of those lookups (a DryRun of DescribeInstances is made whenever an
// instance is missing). Only then is it left out of Status, i.e. released.
type Instances struct {
	vpcID string
	api   ecsAPI
	inv   *invoker
	now   func() time.Time
	// grace is how long an instance must be missing, with the
	// permissions proven, before it counts as released.
	grace time.Duration
	// perms proves the permissions; nil proves nothing (never released).
	perms *Permissions

	mu    sync.Mutex
	byIPs map[string]ipLookup
	// absentSince is when each instance was first missing from a lookup
	// made with the permissions proven; a sighting or an unproven lookup
	// forgets it.
	absentSince map[string]time.Time
}

type ipLookup struct {
	id string
	at time.Time
}

var _ route.Instances = (*Instances)(nil)

// ParseProviderID extracts the ECS instance ID from a node's
// spec.providerID. The Alibaba CCM writes "<region>.<instance-id>"; the
// "alicloud://" prefix is accepted too. It reports false for anything
// else, including IDs that do not look like instance IDs.
func ParseProviderID(providerID string) (region, instanceID string, ok bool) {
	s := strings.TrimPrefix(providerID, "alicloud://")
	region, id, found := strings.Cut(s, ".")
	if !found || !validRegion(region) || !validResourceID(id, "i-") {
		return "", "", false
	}
	return region, id, true
}

// InstanceID returns the node's ECS instance ID: from its providerID, or by
// looking its InternalIPs up among the instances of the VPC.
func (in *Instances) InstanceID(ctx context.Context, n route.NodeRef) (string, error) {
	if n.ProviderID != "" {
		if _, id, ok := ParseProviderID(n.ProviderID); ok {
			return id, nil
		}
	}
	if len(n.InternalIPs) == 0 {
		return "", fmt.Errorf("node %s: providerID %q names no ECS instance and the node has no InternalIP: %w", n.Name, n.ProviderID, route.ErrNoInstance)
	}
	key := ipKey(n.InternalIPs)
	in.mu.Lock()
	if hit, ok := in.byIPs[key]; ok && in.now().Sub(hit.at) < ipLookupTTL {
		in.mu.Unlock()
		return hit.id, nil
	}
	in.mu.Unlock()

	ips := make([]string, 0, len(n.InternalIPs))
	for _, ip := range n.InternalIPs {
		if ip.Is4() {
			ips = append(ips, ip.String())
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("node %s has no IPv4 InternalIP to look up in ECS: %w", n.Name, route.ErrNoInstance)
	}
	encoded, err := json.Marshal(ips)
	if err != nil {
		return "", fmt.Errorf("node %s: encoding InternalIPs: %w", n.Name, err)
	}
	resp, err := call(ctx, in.inv, "DescribeInstances", func() *ecs.DescribeInstancesRequest {
		req := ecs.CreateDescribeInstancesRequest()
		req.VpcId = in.vpcID
		// ECS honours PrivateIpAddresses only with
		// InstanceNetworkType=vpc; without it the filter is silently
		// dropped.
		req.InstanceNetworkType = "vpc"
		req.PrivateIpAddresses = string(encoded)
		req.PageSize = requests.NewInteger(maxInstanceIDs)
		return req
	}, in.api.DescribeInstances)
	if err != nil {
		return "", fmt.Errorf("looking up the ECS instance of node %s by InternalIP %s: %w", n.Name, strings.Join(ips, ","), err)
	}
	found := map[string]bool{}
	for _, inst := range resp.Instances.Instance {
		found[inst.InstanceId] = true
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("node %s: no ECS instance in VPC %s has InternalIP %s: %w", n.Name, in.vpcID, strings.Join(ips, ","), route.ErrNoInstance)
	case 1:
	default:
		return "", fmt.Errorf("node %s: %d ECS instances in VPC %s have InternalIP %s: %w", n.Name, len(found), in.vpcID, strings.Join(ips, ","), route.ErrNoInstance)
	}
	id := resp.Instances.Instance[0].InstanceId
	in.mu.Lock()
	now := in.now()
	for k, hit := range in.byIPs { // forget expired lookups of departed nodes
		if now.Sub(hit.at) >= ipLookupTTL {
			delete(in.byIPs, k)
		}
	}
	in.byIPs[key] = ipLookup{id: id, at: now}
	in.mu.Unlock()
	return id, nil
}

func ipKey(ips []netip.Addr) string {
	s := make([]string, 0, len(ips))
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// Status returns the status of each instance that has not been proven
// released, keyed by instance ID, asking ECS for at most 100 IDs per call.
// Strings that are not ECS instance IDs are left out of the question (and
// so of the answer): ECS would refuse the whole call for one malformed ID.
// See Instances for when a missing instance counts as released.
func (in *Instances) Status(ctx context.Context, ids []string) (map[string]string, error) {
	asked := validIDs(ids, "i-")
	out := make(map[string]string, len(asked))
	err := describeInstancesByID(ctx, in.inv, in.api, asked, func(inst ecs.Instance) {
		out[inst.InstanceId] = inst.Status
	})
	if err != nil {
		return nil, err
	}
	in.forgetReleased(asked, out)
	var missing []string
	for _, id := range asked {
		if _, ok := out[id]; !ok {
			missing = append(missing, id)
		}
	}
	proven := len(missing) > 0 && in.perms != nil && in.perms.confirm(ctx, "ecs:DescribeInstances")
	now := in.now()
	in.mu.Lock()
	defer in.mu.Unlock()
	for id := range in.absentSince {
		_, stillMissing := slices.BinarySearch(missing, id) // asked, so missing, is sorted
		if !stillMissing || !proven {
			delete(in.absentSince, id)
		}
	}
	for _, id := range missing {
		since, ok := in.absentSince[id]
		if proven && !ok {
			since = now
			in.absentSince[id] = now
		}
		if !proven || now.Sub(since) < in.grace {
			out[id] = route.InstanceAbsent
		}
	}
	return out, nil
}

// describeInstancesByID describes instances by ID, 100 per DescribeInstances
// call, and hands each instance that exists to each.
func describeInstancesByID(ctx context.Context, inv *invoker, api ecsAPI, ids []string, each func(ecs.Instance)) error {
	for chunk := range slices.Chunk(ids, maxInstanceIDs) {
		encoded, err := json.Marshal(chunk)
		if err != nil {
			return fmt.Errorf("encoding instance IDs: %w", err)
		}
		resp, err := call(ctx, inv, "DescribeInstances", func() *ecs.DescribeInstancesRequest {
			req := ecs.CreateDescribeInstancesRequest()
			req.InstanceIds = string(encoded)
			req.PageSize = requests.NewInteger(maxInstanceIDs)
			return req
		}, api.DescribeInstances)
		if err != nil {
			return fmt.Errorf("describing %d ECS instances: %w", len(chunk), err)
		}
		for _, inst := range resp.Instances.Instance {
			each(inst)
		}
	}
	return nil
}

// validIDs returns the distinct strings that look like resource IDs with
// the prefix, sorted. Malformed IDs are left out of questions to the API,
// which would refuse the whole call for one of them.
func validIDs(ids []string, prefix string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if validResourceID(id, prefix) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// forgetReleased drops the InternalIP lookups that found an instance ECS no
// longer knows: its private IP may be handed to a new instance at once, and
// a node reusing it must not be mapped to the released one.
func (in *Instances) forgetReleased(asked []string, found map[string]string) {
	released := map[string]bool{}
	for _, id := range asked {
		if _, ok := found[id]; !ok {
			released[id] = true
		}
	}
	if len(released) == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, hit := range in.byIPs {
		if released[hit.id] {
			delete(in.byIPs, k)
		}
	}
}
