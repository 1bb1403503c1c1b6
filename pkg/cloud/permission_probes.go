package cloud

import (
	"context"
	"errors"
	"fmt"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

// Harmless targets of the write probes. No custom entry can ever exist in
// 100.64.0.0/10 (the VPC refuses such destinations: cloud service routes),
// and the /32 differs from the system entry 100.64.0.0/10, so a create is
// refused and a delete finds nothing, whatever the table holds; the next
// hop does not exist either. The description names the probe, should a
// cloud ever accept it.
const (
	probeDestination = "100.64.255.254/32"
	probeNextHop     = "i-permissionprobe0000"
	probeEntryID     = "rte-permissionprobe0000"
	probeENIID       = "eni-permissionprobe0000"
	probeDescription = "vpc-route-publisher permission probe"
)

// permissionProbes are the RAM actions the publisher calls, each with the
// call that proves it granted. DryRun is used where the SDK's request
// carries it (ECS DescribeInstances, VPC DescribeVpcs); reads without it
// are made for real with the smallest page; writes are made with a target
// the cloud refuses after authorization (see probeDestination), so that
// only a RAM refusal fails them as Forbidden. Append new actions here: the
// readiness check, the metric and deploy/ram-policy.json's test follow.
var permissionProbes = []permissionProbe{
	{
		Action: "ecs:DescribeInstances",
		DryRun: true,
		Call: func(ctx context.Context, env probeEnv) error {
			return probeCall(ctx, env.inv, "DescribeInstances", func() *ecs.DescribeInstancesRequest {
				req := ecs.CreateDescribeInstancesRequest()
				req.VpcId = env.vpcID
				req.DryRun = requests.NewBoolean(true)
				return req
			}, env.ecs.DescribeInstances)
		},
	},
	{
		Action: "vpc:DescribeVpcs",
		DryRun: true,
		Call: func(ctx context.Context, env probeEnv) error {
			return probeCall(ctx, env.inv, "DescribeVpcs", func() *vpc.DescribeVpcsRequest {
				req := vpc.CreateDescribeVpcsRequest()
				req.VpcId = env.vpcID
				req.DryRun = requests.NewBoolean(true)
				return req
			}, env.vpc.DescribeVpcs)
		},
	},
	{
		Action: "vpc:DescribeRouteTableList",
		Call: func(ctx context.Context, env probeEnv) error {
			return probeCall(ctx, env.inv, "DescribeRouteTableList", func() *vpc.DescribeRouteTableListRequest {
				req := vpc.CreateDescribeRouteTableListRequest()
				req.VpcId = env.vpcID
				req.PageSize = requests.NewInteger(1)
				return req
			}, env.vpc.DescribeRouteTableList)
		},
	},
	{
		Action: "vpc:DescribeRouteEntryList",
		Call: perTable(func(ctx context.Context, env probeEnv, table string) error {
			return probeCall(ctx, env.inv, "DescribeRouteEntryList", func() *vpc.DescribeRouteEntryListRequest {
				req := vpc.CreateDescribeRouteEntryListRequest()
				req.RouteTableId = table
				req.MaxResult = requests.NewInteger(1)
				return req
			}, env.vpc.DescribeRouteEntryList)
		}),
	},
	{
		Action: "vpc:CreateRouteEntries",
		Call: perTable(func(ctx context.Context, env probeEnv, table string) error {
			return probeCall(ctx, env.inv, "CreateRouteEntries", func() *vpc.CreateRouteEntriesRequest {
				req := vpc.CreateCreateRouteEntriesRequest()
				req.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{{
					RouteTableId: table, DstCidrBlock: probeDestination, NextHop: probeNextHop,
					NextHopType: "Instance", Describption: probeDescription,
				}}
				return req
			}, env.vpc.CreateRouteEntries)
		}),
	},
	{
		Action: "vpc:DeleteRouteEntries",
		Call: perTable(func(ctx context.Context, env probeEnv, table string) error {
			return probeCall(ctx, env.inv, "DeleteRouteEntries", func() *vpc.DeleteRouteEntriesRequest {
				req := vpc.CreateDeleteRouteEntriesRequest()
				req.RouteEntries = &[]vpc.DeleteRouteEntriesRouteEntries{{
					RouteTableId: table, DstCidrBlock: probeDestination, NextHop: probeNextHop,
				}}
				return req
			}, env.vpc.DeleteRouteEntries)
		}),
	},
	{
		// Only --adopt-unmarked modifies entries. The action names an
		// entry, not a table, so an entry that cannot exist is named.
		Action: "vpc:ModifyRouteEntry",
		Needed: func(c probeConfig) bool { return c.adopt },
		Call: func(ctx context.Context, env probeEnv) error {
			return probeCall(ctx, env.inv, "ModifyRouteEntry", func() *vpc.ModifyRouteEntryRequest {
				req := vpc.CreateModifyRouteEntryRequest()
				req.RouteEntryId = probeEntryID
				req.Description = probeDescription
				return req
			}, env.vpc.ModifyRouteEntry)
		},
	},
	{
		// Without DryRun in its request, only a non-empty answer proves
		// it: ECS answers a key without it with an empty list. Every
		// instance has a primary ENI, so an empty list while
		// DescribeInstances lists an instance of the VPC is a refusal.
		Action: "ecs:DescribeNetworkInterfaces",
		Needed: func(c probeConfig) bool { return c.sourceDestCheck != "" && c.sourceDestCheck != "ignore" },
		Call: func(ctx context.Context, env probeEnv) error {
			resp, err := callOnce(ctx, env.inv, "DescribeNetworkInterfaces", func() *ecs.DescribeNetworkInterfacesRequest {
				req := ecs.CreateDescribeNetworkInterfacesRequest()
				req.VpcId = env.vpcID
				req.MaxResults = requests.NewInteger(1)
				return req
			}, env.eni.DescribeNetworkInterfaces)
			switch {
			case err != nil:
				return err
			case len(resp.NetworkInterfaceSets.NetworkInterfaceSet) > 0:
				return nil
			}
			inst, ierr := callOnce(ctx, env.inv, "DescribeInstances", func() *ecs.DescribeInstancesRequest {
				req := ecs.CreateDescribeInstancesRequest()
				req.VpcId = env.vpcID
				req.MaxResults = requests.NewInteger(1)
				return req
			}, env.ecs.DescribeInstances)
			if ierr != nil || len(inst.Instances.Instance) == 0 {
				return errEmptyAnswer
			}
			return fmt.Errorf("DescribeNetworkInterfaces listed no ENI although instance %s is in VPC %s: %w",
				inst.Instances.Instance[0].InstanceId, env.vpcID, ErrPermissionDenied)
		},
	},
	{
		// Only --source-dest-check=disable writes ENIs; an ENI that cannot
		// exist is named, with no attribute to change.
		Action: "ecs:ModifyNetworkInterfaceAttribute",
		Needed: func(c probeConfig) bool { return c.sourceDestCheck == "disable" },
		Call: func(ctx context.Context, env probeEnv) error {
			return probeCall(ctx, env.inv, "ModifyNetworkInterfaceAttribute", func() *ecs.ModifyNetworkInterfaceAttributeRequest {
				req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
				req.NetworkInterfaceId = probeENIID
				return req
			}, env.eni.ModifyNetworkInterfaceAttribute)
		},
	},
}

// errEmptyAnswer is the outcome of a read without DryRun that listed
// nothing: from ECS, that is also how a refusal looks, so it proves nothing.
var errEmptyAnswer = errors.New("an empty answer, which is also how ECS refuses a key without the permission")

// probeCall makes one call of a probe: rate-limited and counted like any
// other, but never retried, since a busy VPC or a throttled call answers
// the probe's question as well as a success (or says it cannot).
func probeCall[R requests.AcsRequest, T any](ctx context.Context, inv *invoker, action string, build func() R, send func(R) (T, error)) error {
	if _, err := callOnce(ctx, inv, action, build, send); err != nil {
		return err
	}
	return nil
}

// perTable runs a probe on every selected route table: a policy scoped to
// route-table ARNs may grant one table and not another. It stops at the
// first failure. Not knowing the tables proves nothing either way, so that
// failure is returned without its cloud error.
func perTable(probe func(ctx context.Context, env probeEnv, table string) error) func(context.Context, probeEnv) error {
	return func(ctx context.Context, env probeEnv) error {
		tables, err := env.tables(ctx)
		if err != nil {
			return fmt.Errorf("listing the route tables to probe: %v", err) //nolint:errorlint // deliberately not wrapped: see above
		}
		for _, t := range tables {
			if err := probe(ctx, env, t.ID); err != nil {
				return err
			}
		}
		return nil
	}
}
