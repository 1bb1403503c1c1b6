package cloud

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// maxENIIDs is the most NetworkInterfaceId.N DescribeNetworkInterfaces
// takes per call (the Alibaba CCM batches by the same 100).
const maxENIIDs = 100

// eniTypePrimary is the Type of an instance's primary ENI in DescribeInstances
// and DescribeNetworkInterfaces.
const eniTypePrimary = "Primary"

// eniAPI is the part of the ECS API the ENI checks use.
type eniAPI interface {
	DescribeInstances(*ecs.DescribeInstancesRequest) (*ecs.DescribeInstancesResponse, error)
	DescribeNetworkInterfaces(*ecs.DescribeNetworkInterfacesRequest) (*ecs.DescribeNetworkInterfacesResponse, error)
	ModifyNetworkInterfaceAttribute(*ecs.ModifyNetworkInterfaceAttributeRequest) (*ecs.ModifyNetworkInterfaceAttributeResponse, error)
}

var (
	_ eniAPI     = (*ecs.Client)(nil)
	_ eniAPI     = pooledECS{}
	_ route.ENIs = (*ENIs)(nil)
)

func (p pooledECS) DescribeNetworkInterfaces(r *ecs.DescribeNetworkInterfacesRequest) (*ecs.DescribeNetworkInterfacesResponse, error) {
	return with(p.pool, func(c *ecs.Client) (*ecs.DescribeNetworkInterfacesResponse, error) {
		return c.DescribeNetworkInterfaces(r)
	})
}

func (p pooledECS) ModifyNetworkInterfaceAttribute(r *ecs.ModifyNetworkInterfaceAttributeRequest) (*ecs.ModifyNetworkInterfaceAttributeResponse, error) {
	return with(p.pool, func(c *ecs.Client) (*ecs.ModifyNetworkInterfaceAttributeResponse, error) {
		return c.ModifyNetworkInterfaceAttribute(r)
	})
}

// ENIs reads and turns off the source/destination check of the primary ENI
// of instances: the ENI a route entry with an Instance next hop delivers to.
//
// An instance's primary ENI is found once, from DescribeInstances (100
// instances per call, the NetworkInterfaces of type Primary, as the Alibaba
// CCM finds it), and remembered: a primary ENI cannot be detached, so it
// stays the instance's for the instance's life. The checks are then read
// with DescribeNetworkInterfaces by up to 100 ENI IDs per call, so a pass
// over N nodes costs about N/100 calls once the ENIs are known.
type ENIs struct {
	api         eniAPI
	inv         *invoker
	waitTimeout time.Duration
	poll        backoff
	now         func() time.Time

	mu      sync.Mutex
	primary map[string]string // instance → primary ENI
}

// SourceDestChecks implements route.ENIs.
func (e *ENIs) SourceDestChecks(ctx context.Context, instanceIDs []string) (map[string]route.ENICheck, error) {
	ids := validIDs(instanceIDs, "i-")
	enis, err := e.primaryENIs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byENI := make(map[string]string, len(enis))
	eniIDs := make([]string, 0, len(enis))
	for inst, eni := range enis {
		byENI[eni] = inst
		eniIDs = append(eniIDs, eni)
	}
	checks, err := e.readChecks(ctx, eniIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]route.ENICheck, len(checks))
	for eni, on := range checks {
		inst := byENI[eni]
		out[inst] = route.ENICheck{Instance: inst, ENI: eni, On: on}
	}
	// An ENI no longer listed went away with its instance: look again
	// next time rather than trust the remembered ID.
	e.mu.Lock()
	for eni, inst := range byENI {
		if _, ok := checks[eni]; !ok {
			delete(e.primary, inst)
		}
	}
	e.mu.Unlock()
	return out, nil
}

// DisableSourceDestCheck implements route.ENIs: one
// ModifyNetworkInterfaceAttribute per ENI, then DescribeNetworkInterfaces
// polls (batched, with backoff, for at most the route wait timeout) until
// each ENI reads back off.
func (e *ENIs) DisableSourceDestCheck(ctx context.Context, checks []route.ENICheck) map[string]error {
	logger := klog.FromContext(ctx)
	out := make(map[string]error, len(checks))
	pending := map[string]string{} // ENI → instance
	for _, ck := range checks {
		_, err := call(ctx, e.inv, "ModifyNetworkInterfaceAttribute", func() *ecs.ModifyNetworkInterfaceAttributeRequest {
			req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
			req.NetworkInterfaceId = ck.ENI
			req.SourceDestCheck = requests.NewBoolean(false)
			return req
		}, e.api.ModifyNetworkInterfaceAttribute)
		if err != nil {
			out[ck.Instance] = fmt.Errorf("modifying ENI %s: %w", ck.ENI, err)
			continue
		}
		logger.V(2).Info("Asked to turn off the source/destination check", "instance", ck.Instance, "eni", ck.ENI)
		pending[ck.ENI] = ck.Instance
	}
	deadline := e.now().Add(e.waitTimeout)
	for poll := 0; len(pending) > 0; poll++ {
		if !sleepCtx(ctx, min(e.poll.delay(poll), max(deadline.Sub(e.now()), 0))) {
			break
		}
		read, err := e.readChecks(ctx, slices.Sorted(maps.Keys(pending)))
		if err != nil {
			if !errors.Is(err, route.ErrThrottled) && !errors.Is(err, route.ErrBusy) && !errors.Is(err, ErrNetwork) {
				for eni, inst := range pending {
					out[inst] = fmt.Errorf("reading back ENI %s: %w", eni, err)
				}
				return out
			}
		}
		for eni, on := range read {
			if !on {
				out[pending[eni]] = nil
				delete(pending, eni)
			}
		}
		if !e.now().Before(deadline) {
			break
		}
	}
	for eni, inst := range pending {
		out[inst] = fmt.Errorf("ENI %s still has the source/destination check on after %v: %w", eni, e.waitTimeout, route.ErrNotAvailable)
	}
	return out
}

// primaryENIs returns the primary ENI of each instance that exists,
// describing the instances not seen before.
func (e *ENIs) primaryENIs(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	var unknown []string
	e.mu.Lock()
	for _, id := range ids {
		if eni, ok := e.primary[id]; ok {
			out[id] = eni
		} else {
			unknown = append(unknown, id)
		}
	}
	e.mu.Unlock()
	var listed []string
	err := describeInstancesByID(ctx, e.inv, e.api, unknown, func(inst ecs.Instance) {
		listed = append(listed, inst.InstanceId)
		for _, ni := range inst.NetworkInterfaces.NetworkInterface {
			if ni.Type == eniTypePrimary && ni.NetworkInterfaceId != "" {
				out[inst.InstanceId] = ni.NetworkInterfaceId
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("looking up primary ENIs: %w", err)
	}
	// An instance listed without its ENIs (an older API answer): ask
	// DescribeNetworkInterfaces by instance.
	for _, id := range listed {
		if _, ok := out[id]; ok {
			continue
		}
		eni, err := e.primaryByInstance(ctx, id)
		if err != nil {
			return nil, err
		}
		if eni != "" {
			out[id] = eni
		}
	}
	e.mu.Lock()
	for _, id := range unknown {
		if eni, ok := out[id]; ok {
			e.primary[id] = eni
		}
	}
	e.mu.Unlock()
	return out, nil
}

// primaryByInstance asks DescribeNetworkInterfaces for an instance's
// primary ENI; "" when it has none.
func (e *ENIs) primaryByInstance(ctx context.Context, instanceID string) (string, error) {
	resp, err := call(ctx, e.inv, "DescribeNetworkInterfaces", func() *ecs.DescribeNetworkInterfacesRequest {
		req := ecs.CreateDescribeNetworkInterfacesRequest()
		req.InstanceId = instanceID
		req.Type = eniTypePrimary
		req.MaxResults = requests.NewInteger(maxENIIDs)
		return req
	}, e.api.DescribeNetworkInterfaces)
	if err != nil {
		return "", fmt.Errorf("describing the primary ENI of ECS instance %s: %w", instanceID, err)
	}
	for _, ni := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
		if ni.Type == eniTypePrimary && ni.InstanceId == instanceID {
			return ni.NetworkInterfaceId, nil
		}
	}
	return "", nil
}

// readChecks returns the check of each listed ENI that exists, by ENI ID,
// 100 IDs per call, following NextToken.
func (e *ENIs) readChecks(ctx context.Context, eniIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(eniIDs))
	for chunk := range slices.Chunk(eniIDs, maxENIIDs) {
		ids := slices.Clone(chunk)
		token := ""
		for {
			resp, err := call(ctx, e.inv, "DescribeNetworkInterfaces", func() *ecs.DescribeNetworkInterfacesRequest {
				req := ecs.CreateDescribeNetworkInterfacesRequest()
				req.NetworkInterfaceId = &ids
				req.MaxResults = requests.NewInteger(maxENIIDs)
				req.NextToken = token
				return req
			}, e.api.DescribeNetworkInterfaces)
			if err != nil {
				return nil, fmt.Errorf("describing %d ENIs: %w", len(ids), err)
			}
			for _, ni := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
				out[ni.NetworkInterfaceId] = ni.SourceDestCheck
			}
			if resp.NextToken == "" || resp.NextToken == token {
				break
			}
			token = resp.NextToken
		}
	}
	return out, nil
}
