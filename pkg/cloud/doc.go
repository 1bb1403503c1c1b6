// Package cloud is vpc-route-publisher's access to Alibaba Cloud: the route
// tables of the cluster's VPC and its ECS instances, over the official
// alibaba-cloud-sdk-go clients.
//
// # What it provides
//
// New returns a *Cloud for one VPC. Cloud.Table is a route.Table over every
// selected route table (given with --route-table-ids or the cloud-config,
// or else every route table of the VPC: the system table and the custom
// tables bound to vSwitches). Cloud.Instances is a route.Instances mapping
// nodes to ECS instances (from spec.providerID, else by InternalIP) and
// reporting instance status. Cloud.ENIs is a route.ENIs reading and turning
// off the source/destination check of each instance's primary ENI (the ENI
// an Instance route delivers to): the primary ENI is found once from
// DescribeInstances, the checks are read with DescribeNetworkInterfaces by up
// to 100 ENI IDs per call, and ModifyNetworkInterfaceAttribute is followed by
// polling until the ENI reads back off. An instance counts as released only
// after it has been missing from by-ID lookups for the release grace with
// every RAM permission proven (ECS answers a key without
// ecs:DescribeInstances with an empty list). Cloud.Permissions proves the
// permissions with one harmless call per action (permission_probes.go),
// DryRun where the API offers it. Cloud.RoutesAdapter implements the
// k8s.io/cloud-provider Routes interface on the same machinery, so that the
// upstream route controller can be run against it for comparison.
//
// # The ownership marker
//
// Every entry the publisher creates or adopts carries a marker in its
// Description,
//
//	managed-by=vpc-route-publisher;cluster=<cluster-id>;node=<node>
//
// (route.Marker), and a RouteEntryName derived from the node name
// (sanitized to the API's rules: 1–128 characters, starting with a letter,
// letters, digits, '.', '-' and '_'). List reads the marker back into
// route.Route.Owner and route.Route.Node; an entry without a marker of ours
// has an empty Owner, and the decision logic of pkg/route never deletes or
// modifies it. Adopt stamps the marker onto an existing unmarked entry with
// ModifyRouteEntry (migration from the CCM). The marker makes ownership a
// property of the cloud state alone: it survives restarts, failovers and
// nodes deleted while the controller was down.
//
// # Writes
//
// All writes of one VPC go through one mutex, because the VPC serializes
// route writes anyway. CreateRouteEntries and DeleteRouteEntries are called
// with at most 50 entries of one table; the per-entry failures they report
// are matched to the entries by entry ID or by destination and next hop.
// Deletes name the entry by the RouteEntryId it was listed with, so an
// entry re-created since that listing is never the one deleted. After
// writing, the package polls DescribeRouteEntryList with backoff until the
// entries are Available (or gone), for at most --route-wait-timeout, and
// returns one route.Result per entry. A write whose answer was lost (a
// timeout) or that was refused as a duplicate or as "not yet Available"
// (VPC_ROUTE_ENTRY_STATUS_ERROR) is verified against the table: only an
// entry with our next hop and our marker means the write succeeded.
// Deleting an entry that is already gone succeeds. A listing whose
// NextToken is refused (expired) starts over.
//
// # Errors
//
// Every failure is an *APIError naming the action, the Alibaba error code,
// the HTTP status and the request ID, and unwrapping to one error class,
// tested with errors.Is:
//
//   - route.ErrThrottled: the API throttled us (Throttling*, HTTP 429).
//     Retried with backoff; the client-side rate limiter halves its rate and
//     recovers additively.
//   - route.ErrBusy: the VPC, table or entry is busy with another operation
//     (TaskConflict, IncorrectRouteEntryStatus and its misspelled twin,
//     Incorrect{Vpc,VSwitch,Instance}Status, OperationFailed.DistibuteLock,
//     OperationConflict, IncorrectStatus.*, SystemBusy, ServiceUnavailable,
//     InternalError, VPC.ERROR, LastTokenProcessing,
//     VPC_ROUTE_ENTRY_STATUS_ERROR, HTTP 5xx). Retried with backoff. The
//     code decides, not the status: IncorrectInstanceStatus comes as 403
//     too and is still busy, not unauthorized.
//   - ErrNetwork: the API could not be reached or did not answer in time.
//     Retried; a write is then verified against the table.
//   - route.ErrQuotaExceeded: the route table is full (QuotaExceeded*,
//     VPC_ROUTE_ENTRY_QUOTA_EXCEEDED).
//   - route.ErrConflict: the destination is taken by another entry
//     (VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE with another next hop).
//   - route.ErrNotFound: the table, entry or instance does not exist
//     (*.NotFound, VPC_ROUTER_ENTRY_NOT_EXIST on create).
//   - route.ErrInvalid: the request is invalid and retrying will not help.
//   - route.ErrUnauthorized: credentials are wrong, expired or lack
//     permission (InvalidAccessKeyId.*, SignatureDoesNotMatch,
//     InvalidSecurityToken.*, Forbidden*, ...).
//   - route.ErrNotAvailable: written, but not Available before the wait
//     timeout.
//
// Classification uses only error codes and HTTP statuses
// (errors.As(err, &*sdkerrors.ServerError)), never message text. Error
// messages never contain credentials: the SDK's own error text (which
// carries response headers, the string to sign and, for transport errors,
// the signed request URL with AccessKeyId and SecurityToken) is not copied.
//
// # Calls
//
// Every API call waits on a shared rate.Limiter (--cloud-qps,
// --cloud-burst), is bounded by --cloud-call-timeout and the caller's
// context (the SDK takes no context: the call runs in a goroutine and the
// SDK's own read and connect timeouts are set too), and is counted in the
// vpc_route_publisher_cloud_api_* metrics.
//
// # Credentials
//
// The first configured source wins: --credentials-dir (files re-read before
// every call, so a rotated Secret needs no restart), the environment
// AccessKey (with an optional STS token), RRSA (AssumeRoleWithOIDC with the
// projected token, refreshed before expiry), the cloud-config AccessKey, and
// the ECS RAM role from the instance metadata service (IMDSv2). A source
// that is half configured is an error, never a reason to fall through.
package cloud
