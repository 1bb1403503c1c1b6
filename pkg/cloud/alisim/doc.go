// Package alisim simulates the parts of Alibaba Cloud that vpc-route-publisher
// talks to, faithfully enough that the unmodified alibaba-cloud-sdk-go clients
// (services/vpc, services/ecs, services/sts) work against it over plain HTTP.
//
// A Simulator serves three handlers, each meant for its own listener:
//
//   - APIHandler: the OpenAPI RPC protocol (GET or POST, parameters in the
//     query or a form body, Format=JSON), dispatched by Version and Action:
//     VPC 2016-04-28 (DescribeVpcs, DescribeVSwitches, DescribeRouteTableList,
//     DescribeRouteEntryList, CreateRouteEntry, CreateRouteEntries,
//     DeleteRouteEntry, DeleteRouteEntries, ModifyRouteEntry), ECS 2014-05-26
//     (DescribeInstances, DescribeNetworkInterfaces,
//     ModifyNetworkInterfaceAttribute) and STS 2015-04-01 (AssumeRoleWithOIDC). Requests
//     are authenticated like the real service: HMAC-SHA1 signature version
//     1.0, Timestamp window, SignatureNonce replay, STS SecurityToken and
//     expiry, per-key allowed actions (Forbidden.RAM) and RAM policies
//     (ram.go: Allow/Deny statements, action wildcards, route-table ARNs,
//     each action refusing in its real shape, DryRun). Errors are the
//     real JSON body {RequestId, HostId, Code, Message, Recommend} with the
//     real HTTP status, so the SDK returns *errors.ServerError.
//   - MetadataHandler: the ECS instance metadata service with IMDSv2
//     session tokens and RAM role credentials.
//   - AdminHandler: a JSON admin API to seed, dump and mutate the state,
//     inject faults and throttles and read call counters. It is not part of
//     the simulated cloud.
//
// The cloud semantics that matter to a route controller are modelled: a
// route write returns at once, its entries stay Pending (or Deleting, or
// Modifying) for Options.WriteBase + Options.WritePerEntry × entries and the
// VPC stays busy for as long, so a concurrent write fails with TaskConflict;
// destinations are validated (malformed, vSwitch overlap, 100.64.0.0/10,
// duplicates, quota, unknown or foreign next hop); system entries cannot be
// deleted; pagination uses NextToken/MaxResult or PageNumber/PageSize as the
// real actions do.
//
// Time comes from a Clock: the wall clock by default, a FakeClock in tests
// that want to step through transitions, or a ScaledClock to run a slow
// latency model quickly.
//
// In tests, StartForTest serves the three handlers on 127.0.0.1:
//
//	ts := alisim.StartForTest(t, alisim.Options{AccessKeyID: "id", AccessKeySecret: "secret"})
//	client, _ := vpc.NewClientWithOptions("cn-chengdu", sdk.NewConfig().WithScheme("HTTP"),
//		credentials.NewAccessKeyCredential("id", "secret"))
//	client.Domain = ts.APIEndpoint
//
// and ts.Sim gives the Go equivalents of the admin API (Routes, PutRoute,
// DeleteRoute, ModifyRoute, SetInstanceStatus, ReleaseInstance,
// AddInstances, AddTable, SetQuota, AddAccessKey, SetAccessKeyPolicy,
// SetRolePolicy, SetBusy, InjectFault,
// SetThrottle, Counters, State, LoadState, AssumeRole, RegisterOIDCToken,
// NetworkInterfaces, SetSourceDestCheck, SetInstanceSourceDestCheck,
// AttachSecondaryENI).
//
// Every instance has a primary ENI; its source/destination check is on for
// instances created from Options.SourceDestCheckSince (Alibaba's default
// since 2025-04-22) and off for older ones, such as the three instances of
// DefaultState.
//
// docs/alisim.md lists every parameter, error code and HTTP status, and what
// is knowingly not modelled. The package imports only the standard library.
package alisim
