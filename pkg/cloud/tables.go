package cloud

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// API limits.
const (
	// maxBatch is the most entries CreateRouteEntries and DeleteRouteEntries
	// accept in one call.
	maxBatch = 50
	// maxEntryPage is the largest MaxResult of DescribeRouteEntryList.
	maxEntryPage = 100
	// maxTablePage is the largest PageSize of DescribeRouteTableList.
	maxTablePage = 50
	// tableCacheTTL is how long the selected route tables are reused before
	// they are described (or discovered) again.
	tableCacheTTL = time.Minute
)

// Values of the VPC API.
const (
	nextHopInstance = "Instance"
	entryTypeCustom = "Custom"
)

// Tables is the cloud side of the reconciliation for one VPC: the selected
// route tables (explicit, or every route table of the VPC) seen as one
// route.Table. Writes to all of them go through one mutex, because the VPC
// serializes route writes anyway and concurrent writers would only collect
// busy errors.
type Tables struct {
	vpcID     string
	clusterID string
	api       vpcAPI
	inv       *invoker
	// configured are the explicitly selected table IDs; empty means
	// discovery.
	configured  []string
	quota       int
	waitTimeout time.Duration
	poll        backoff
	now         func() time.Time

	writeMu sync.Mutex
	// ipv6Version is the RouteEntries.N.IpVersion value sent for IPv6
	// entries (guarded by writeMu); see createBatch.
	ipv6Version string

	cacheMu  sync.Mutex
	cached   []route.TableInfo
	cachedAt time.Time
}

var _ route.Table = (*Tables)(nil)

// VPC returns the VPC ID.
func (t *Tables) VPC() string { return t.vpcID }

// Tables returns the selected route tables.
func (t *Tables) Tables(ctx context.Context) ([]route.TableInfo, error) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if t.cached != nil && t.now().Sub(t.cachedAt) < tableCacheTTL {
		return append([]route.TableInfo(nil), t.cached...), nil
	}
	var infos []route.TableInfo
	var err error
	if len(t.configured) > 0 {
		infos, err = t.describeConfigured(ctx)
	} else {
		infos, err = t.discover(ctx)
	}
	if err != nil {
		return nil, err
	}
	t.cached, t.cachedAt = infos, t.now()
	return append([]route.TableInfo(nil), infos...), nil
}

func (t *Tables) tableInfo(rt vpc.RouterTableListType) route.TableInfo {
	return route.TableInfo{ID: rt.RouteTableId, VPC: rt.VpcId, Type: rt.RouteTableType, Quota: t.quota}
}

// describeConfigured checks that every configured table exists and belongs
// to the VPC: a table of another VPC is a configuration error, not a table
// to write to.
func (t *Tables) describeConfigured(ctx context.Context) ([]route.TableInfo, error) {
	infos := make([]route.TableInfo, 0, len(t.configured))
	for _, id := range t.configured {
		resp, err := call(ctx, t.inv, "DescribeRouteTableList", func() *vpc.DescribeRouteTableListRequest {
			req := vpc.CreateDescribeRouteTableListRequest()
			req.RouteTableId = id
			return req
		}, t.api.DescribeRouteTableList)
		if err != nil {
			return nil, fmt.Errorf("describing route table %s: %w", id, err)
		}
		var found *vpc.RouterTableListType
		for i := range resp.RouterTableList.RouterTableListType {
			if rt := &resp.RouterTableList.RouterTableListType[i]; rt.RouteTableId == id {
				found = rt
			}
		}
		switch {
		case found == nil:
			return nil, fmt.Errorf("route table %s does not exist: %w", id, route.ErrNotFound)
		case found.VpcId != t.vpcID:
			return nil, fmt.Errorf("route table %s belongs to VPC %s, not to VPC %s: %w", id, found.VpcId, t.vpcID, route.ErrInvalid)
		}
		infos = append(infos, t.tableInfo(*found))
	}
	return infos, nil
}

// discover lists every route table of the VPC a node route belongs in: the
// system table and the custom tables bound to vSwitches. Tables bound to a
// gateway (IPv4 gateway, VPN) route ingress traffic and are skipped.
func (t *Tables) discover(ctx context.Context) ([]route.TableInfo, error) {
	var infos []route.TableInfo
	seen := map[string]bool{}
	for page := 1; ; page++ {
		resp, err := call(ctx, t.inv, "DescribeRouteTableList", func() *vpc.DescribeRouteTableListRequest {
			req := vpc.CreateDescribeRouteTableListRequest()
			req.VpcId = t.vpcID
			req.PageNumber = requests.NewInteger(page)
			req.PageSize = requests.NewInteger(maxTablePage)
			return req
		}, t.api.DescribeRouteTableList)
		if err != nil {
			return nil, fmt.Errorf("listing the route tables of VPC %s: %w", t.vpcID, err)
		}
		list := resp.RouterTableList.RouterTableListType
		for _, rt := range list {
			if seen[rt.RouteTableId] || rt.VpcId != t.vpcID || (rt.RouterType != "" && rt.RouterType != "VRouter") || rt.AssociateType == "Gateway" {
				continue
			}
			seen[rt.RouteTableId] = true
			infos = append(infos, t.tableInfo(rt))
		}
		if len(list) < maxTablePage || (resp.TotalCount > 0 && page*maxTablePage >= resp.TotalCount) {
			break
		}
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("VPC %s has no route table: %w", t.vpcID, route.ErrNotFound)
	}
	return infos, nil
}

// List returns every custom entry of the selected tables.
func (t *Tables) List(ctx context.Context) ([]route.Route, error) {
	tables, err := t.Tables(ctx)
	if err != nil {
		return nil, err
	}
	var all []route.Route
	for _, tb := range tables {
		rs, err := t.listTable(ctx, tb.ID, netip.Prefix{})
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	return all, nil
}

// codeEntryStatusError is the per-entry FailedCode of a batch write that
// hit an entry in a transitional status (Pending, Modifying, Deleting).
const codeEntryStatusError = "VPC_ROUTE_ENTRY_STATUS_ERROR"

// restartCodes are the DescribeRouteEntryList codes that reject a
// NextToken (its reference page's error table). The pages already read are
// worthless then, and a walk from the start is the only way on.
var restartCodes = map[string]bool{
	"IllegalParam.NextToken":        true,
	"IllegalParam.NextTokenExpired": true,
}

// maxListRestarts bounds how often one listing starts over after its
// NextToken was refused, so that a service that keeps refusing fails the
// pass instead of looping.
const maxListRestarts = 3

// listTable pages through the custom entries of one table; with a valid
// dst, only the entries of that destination. When the service refuses a
// NextToken mid-walk (expired, or unknown after a failover), the walk
// starts over rather than failing the pass.
func (t *Tables) listTable(ctx context.Context, table string, dst netip.Prefix) ([]route.Route, error) {
	for restarts := 0; ; restarts++ {
		out, err := t.walkTable(ctx, table, dst)
		var apiErr *APIError
		if err == nil || restarts == maxListRestarts || !errors.As(err, &apiErr) || !restartCodes[apiErr.Code] {
			return out, err
		}
		klog.FromContext(ctx).V(2).Info("Listing a route table again from the start: the service refused its NextToken", "table", table, "code", apiErr.Code)
		t.inv.metrics.retries.WithLabelValues("DescribeRouteEntryList").Inc()
	}
}

// walkTable is one walk through the pages of a table.
func (t *Tables) walkTable(ctx context.Context, table string, dst netip.Prefix) ([]route.Route, error) {
	logger := klog.FromContext(ctx)
	var out []route.Route
	token := ""
	for {
		resp, err := call(ctx, t.inv, "DescribeRouteEntryList", func() *vpc.DescribeRouteEntryListRequest {
			req := vpc.CreateDescribeRouteEntryListRequest()
			req.RouteTableId = table
			req.RouteEntryType = entryTypeCustom
			req.MaxResult = requests.NewInteger(maxEntryPage)
			req.NextToken = token
			if dst.IsValid() {
				req.DestinationCidrBlock = dst.String()
			}
			return req
		}, t.api.DescribeRouteEntryList)
		if err != nil {
			return nil, fmt.Errorf("listing route table %s: %w", table, err)
		}
		for _, e := range resp.RouteEntrys.RouteEntry {
			r, ok := parseEntry(table, e)
			if !ok {
				logger.V(4).Info("Skipping a route entry whose destination is not a CIDR block", "table", table, "entry", e.RouteEntryId, "destination", e.DestinationCidrBlock)
				continue
			}
			out = append(out, r)
		}
		if resp.NextToken == "" || resp.NextToken == token {
			return out, nil
		}
		token = resp.NextToken
	}
}

// parseEntry turns a listed entry into a route.Route. Destinations that are
// not CIDR blocks (prefix lists) are not ours to manage and are skipped.
// Non-instance next hops are kept with NextHop set to the hop ID: they can
// occupy a destination the cluster needs.
func parseEntry(table string, e vpc.RouteEntry) (route.Route, bool) {
	prefix, err := netip.ParsePrefix(e.DestinationCidrBlock)
	if err != nil {
		return route.Route{}, false
	}
	r := route.Route{
		Table:       table,
		Destination: prefix.Masked(),
		EntryID:     e.RouteEntryId,
		Status:      e.Status,
	}
	if hops := e.NextHops.NextHop; len(hops) > 0 {
		r.NextHop, r.NextHopType = hops[0].NextHopId, hops[0].NextHopType
	}
	if r.NextHop == "" {
		r.NextHop = e.InstanceId
	}
	if r.NextHopType == "" {
		r.NextHopType = e.NextHopType
	}
	if m, ok := route.ParseMarker(e.Description); ok {
		r.Owner, r.Node = m.Cluster, m.Node
	}
	return r, true
}

// filteredLookups is the most destinations of one table that snapshot
// looks up one by one (DestinationCidrBlock filter) rather than listing the
// whole table: waiting for the one route of a node should not cost a full
// listing per poll.
const filteredLookups = 3

// snapshot lists the entries of the given destinations of each table,
// indexed by table and destination.
func (t *Tables) snapshot(ctx context.Context, want map[string][]netip.Prefix) (map[route.Key]route.Route, error) {
	snap := map[route.Key]route.Route{}
	for table, dsts := range want {
		var rs []route.Route
		if len(dsts) <= filteredLookups {
			for _, dst := range dsts {
				found, err := t.listTable(ctx, table, dst)
				if err != nil {
					return nil, err
				}
				rs = append(rs, found...)
			}
		} else {
			var err error
			if rs, err = t.listTable(ctx, table, netip.Prefix{}); err != nil {
				return nil, err
			}
		}
		for _, r := range rs {
			snap[r.Key()] = r
		}
	}
	return snap, nil
}

// Create writes the routes with the ownership marker of the cluster and
// waits until they are Available.
func (t *Tables) Create(ctx context.Context, rs []route.Route) []route.Result {
	return t.write(ctx, rs, "CreateRouteEntries", t.validateCreate, t.createBatch, waitAvailable)
}

// write masks the destinations, writes the routes that pass validate in
// batches with action, and waits until each reaches goal. Routes that fail
// validation are not written; their result carries the validation error.
func (t *Tables) write(ctx context.Context, rs []route.Route, action string, validate func(route.Route) error, write batchFunc, goal waitGoal) []route.Result {
	rs = masked(rs)
	results := make([]route.Result, len(rs))
	var todo []int
	for i, r := range rs {
		results[i].Route = r
		if err := validate(r); err != nil {
			results[i].Err = err
			continue
		}
		todo = append(todo, i)
	}
	t.writeMu.Lock()
	verify := t.writeRounds(ctx, action, rs, results, todo, write)
	t.writeMu.Unlock()
	t.wait(ctx, rs, results, verify, goal)
	return results
}

func (t *Tables) validateCreate(r route.Route) error {
	if err := validateKey(r); err != nil {
		return err
	}
	if r.NextHop == "" {
		return fmt.Errorf("route %s in %s has no next hop: %w", r.Destination, r.Table, route.ErrInvalid)
	}
	if err := (route.Marker{Cluster: t.clusterID, Node: r.Node}).Validate(); err != nil {
		return fmt.Errorf("route %s in %s: %w: %w", r.Destination, r.Table, route.ErrInvalid, err)
	}
	return nil
}

// masked returns a copy of rs with masked destinations (10.0.0.5/24 is
// 10.0.0.0/24 to the VPC), so that results match listed entries.
func masked(rs []route.Route) []route.Route {
	out := make([]route.Route, len(rs))
	for i, r := range rs {
		if r.Destination.IsValid() {
			r.Destination = r.Destination.Masked()
		}
		out[i] = r
	}
	return out
}

func validateKey(r route.Route) error {
	if r.Table == "" {
		return fmt.Errorf("route %s has no route table: %w", r.Destination, route.ErrInvalid)
	}
	if !r.Destination.IsValid() {
		return fmt.Errorf("route in %s has no destination: %w", r.Table, route.ErrInvalid)
	}
	return nil
}

// batchFunc writes one batch (entries of one table) and returns the error of
// each entry by index; a missing index means success.
type batchFunc func(ctx context.Context, table string, rs []route.Route, idx []int) map[int]error

// writeRounds writes the entries in batches of at most maxBatch entries of
// one table (the per-entry failures of the API name destination and next
// hop, not the table, so one table per batch keeps them unambiguous).
// Entries that failed with a retryable per-entry code (busy) are written
// again in the next round, with backoff, until the retry budget is spent.
//
// It returns the entries whose outcome must be verified against the table
// before it is known: those written successfully, and those whose write may
// have been applied although it reported an error (a timeout, or a
// duplicate that may be our own earlier write).
func (t *Tables) writeRounds(ctx context.Context, action string, rs []route.Route, results []route.Result, todo []int, write batchFunc) map[int]error {
	logger := klog.FromContext(ctx)
	verify := map[int]error{}
	start := t.now()
	for round := 0; len(todo) > 0; round++ {
		var retry []int
		for _, batch := range batches(rs, todo) {
			errs := write(ctx, batch.table, rs, batch.idx)
			for _, i := range batch.idx {
				err := errs[i]
				var apiErr *APIError
				switch {
				case err == nil:
					verify[i] = nil
				case action == "CreateRouteEntries" && errors.As(err, &apiErr) && apiErr.entry && apiErr.Code == codeEntryStatusError:
					// The destination holds an entry that is not yet
					// Available: the CCM reads this as "created, in
					// progress". Whether it is ours the listing tells.
					verify[i] = err
				case errors.As(err, &apiErr) && apiErr.entry && apiErr.Retryable():
					retry = append(retry, i)
					results[i].Err = err
				case errors.Is(err, ErrNetwork), errors.Is(err, route.ErrConflict):
					verify[i] = err
				default:
					results[i].Err = err
				}
			}
		}
		if len(retry) == 0 {
			break
		}
		wait := t.inv.backoff.delay(round)
		if t.now().Add(wait).Sub(start) > t.inv.retryFor {
			break
		}
		logger.V(2).Info("Retrying busy route entries", "action", action, "entries", len(retry), "round", round+1, "wait", wait)
		t.inv.metrics.retries.WithLabelValues(action).Add(float64(len(retry)))
		if !sleepCtx(ctx, wait) {
			break
		}
		todo = retry
	}
	return verify
}

type batch struct {
	table string
	idx   []int
}

// batches groups entries by table, in order of first appearance, in chunks
// of at most maxBatch.
func batches(rs []route.Route, idx []int) []batch {
	var order []string
	byTable := map[string][]int{}
	for _, i := range idx {
		tb := rs[i].Table
		if _, ok := byTable[tb]; !ok {
			order = append(order, tb)
		}
		byTable[tb] = append(byTable[tb], i)
	}
	var out []batch
	for _, tb := range order {
		all := byTable[tb]
		for len(all) > 0 {
			n := min(len(all), maxBatch)
			out = append(out, batch{table: tb, idx: all[:n]})
			all = all[n:]
		}
	}
	return out
}

// hopKey matches a per-entry failure to the entry: the API reports the
// destination and next hop of each failed entry.
type hopKey struct {
	dst     netip.Prefix
	nextHop string
}

func failureKey(dst, nextHop string) (hopKey, bool) {
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		return hopKey{}, false
	}
	return hopKey{dst: p.Masked(), nextHop: nextHop}, true
}

// RouteEntries.N.IpVersion of CreateRouteEntries. The reference pages
// disagree on its encoding: the action's own page declares an integer, 4 or
// 6; DescribeRouteEntryList documents the names IPv4 and IPv6. The Alibaba
// CCM, proven in production, never sends it (IPv4 only). So IPv4 entries go
// without it, IPv6 entries with the integer of the action's page, and a
// service that refuses that encoding (IllegalParam.IpVersion) gets the
// name instead, from then on.
const (
	ipv6VersionInteger = "6"
	ipv6VersionName    = "IPv6"
	codeIllegalVersion = "IllegalParam.IpVersion"
)

func (t *Tables) createBatch(ctx context.Context, table string, rs []route.Route, idx []int) map[int]error {
	if t.ipv6Version == "" {
		t.ipv6Version = ipv6VersionInteger
	}
	resp, err := t.createEntries(ctx, table, rs, idx)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == codeIllegalVersion && t.ipv6Version == ipv6VersionInteger && hasIPv6(rs, idx) {
		klog.FromContext(ctx).Info("The VPC refused IpVersion 6 for IPv6 entries; sending IPv6 instead", "table", table)
		t.ipv6Version = ipv6VersionName
		resp, err = t.createEntries(ctx, table, rs, idx)
	}
	if err != nil {
		return allFailed(idx, fmt.Errorf("creating %d entries in route table %s: %w", len(idx), table, err))
	}
	return matchFailures(rs, idx, resp.FailedRouteEntries, "CreateRouteEntries", resp.RequestId, table)
}

func hasIPv6(rs []route.Route, idx []int) bool {
	for _, i := range idx {
		if rs[i].Destination.Addr().Is6() {
			return true
		}
	}
	return false
}

// createEntries makes one CreateRouteEntries call for the entries idx of rs.
func (t *Tables) createEntries(ctx context.Context, table string, rs []route.Route, idx []int) (*vpc.CreateRouteEntriesResponse, error) {
	entries := make([]vpc.CreateRouteEntriesRouteEntries, 0, len(idx))
	for _, i := range idx {
		r := rs[i]
		e := vpc.CreateRouteEntriesRouteEntries{
			RouteTableId: table,
			DstCidrBlock: r.Destination.String(),
			NextHop:      r.NextHop,
			NextHopType:  nextHopInstance,
			Name:         entryName(r.Node),
			Description:  route.Marker{Cluster: t.clusterID, Node: r.Node}.String(),
		}
		if r.Destination.Addr().Is6() {
			e.IpVersion = t.ipv6Version
		}
		entries = append(entries, e)
	}
	return call(ctx, t.inv, "CreateRouteEntries", func() *vpc.CreateRouteEntriesRequest {
		req := vpc.CreateCreateRouteEntriesRequest()
		req.RouteEntries = &entries
		return req
	}, t.api.CreateRouteEntries)
}

// matchFailures maps FailedRouteEntries to entry indexes by entry ID when
// the failure names one, else by destination and next hop.
func matchFailures(rs []route.Route, idx []int, failed []vpc.FailedRouteEntriesItem, action, requestID, table string) map[int]error {
	errs := map[int]error{}
	byKey := map[hopKey]int{}
	byID := map[string]int{}
	for _, i := range idx {
		byKey[hopKey{dst: rs[i].Destination, nextHop: rs[i].NextHop}] = i
		if rs[i].EntryID != "" {
			byID[rs[i].EntryID] = i
		}
	}
	for _, f := range failed {
		i, ok := byID[f.RouteEntryId]
		if !ok || f.RouteEntryId == "" {
			k, valid := failureKey(f.DstCidrBlock, f.NextHop)
			if !valid {
				continue
			}
			if i, ok = byKey[k]; !ok {
				continue
			}
		}
		errs[i] = fmt.Errorf("entry %s via %s in route table %s: %w", rs[i].Destination, rs[i].NextHop, table, entryError(action, f.FailedCode, requestID))
	}
	return errs
}

func allFailed(idx []int, err error) map[int]error {
	errs := make(map[int]error, len(idx))
	for _, i := range idx {
		errs[i] = err
	}
	return errs
}

// Delete removes the routes (identified by table, destination and next hop)
// and waits until they are gone. An entry that is already gone counts as
// deleted.
func (t *Tables) Delete(ctx context.Context, rs []route.Route) []route.Result {
	return t.write(ctx, rs, "DeleteRouteEntries", validateKey, t.deleteBatch, waitGone)
}

// entryGoneCodes are the codes that mean "the entry to delete does not
// exist", which for a delete is success.
var entryGoneCodes = map[string]bool{
	"VPC_ROUTER_ENTRY_NOT_EXIST":   true,
	"VPC_ROUTE_ENTRY_NOT_EXIST":    true,
	"InvalidRouteEntryId.NotFound": true,
	"InvalidRouteEntry.NotFound":   true,
}

func isGone(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && entryGoneCodes[apiErr.Code]
}

func (t *Tables) deleteBatch(ctx context.Context, table string, rs []route.Route, idx []int) map[int]error {
	entries := make([]vpc.DeleteRouteEntriesRouteEntries, 0, len(idx))
	for _, i := range idx {
		r := rs[i]
		// Identified by the entry ID the plan was made from: an entry
		// deleted and re-created (by anyone) since that listing has
		// another ID, and is then reported missing instead of deleted.
		// Only routes without a listed ID go by destination and next hop.
		if r.EntryID != "" {
			entries = append(entries, vpc.DeleteRouteEntriesRouteEntries{RouteEntryId: r.EntryID})
			continue
		}
		entries = append(entries, vpc.DeleteRouteEntriesRouteEntries{
			RouteTableId: table,
			DstCidrBlock: r.Destination.String(),
			NextHop:      r.NextHop,
		})
	}
	resp, err := call(ctx, t.inv, "DeleteRouteEntries", func() *vpc.DeleteRouteEntriesRequest {
		req := vpc.CreateDeleteRouteEntriesRequest()
		req.RouteEntries = &entries
		return req
	}, t.api.DeleteRouteEntries)
	if err != nil {
		if !isGone(err) {
			return allFailed(idx, fmt.Errorf("deleting %d entries from route table %s: %w", len(idx), table, err))
		}
		if len(idx) == 1 {
			return nil
		}
		// One missing entry can fail the whole call; delete the entries
		// one by one to tell which ones are gone.
		errs := map[int]error{}
		for _, i := range idx {
			maps.Copy(errs, t.deleteBatch(ctx, table, rs, []int{i}))
		}
		return errs
	}
	errs := matchFailures(rs, idx, resp.FailedRouteEntries, "DeleteRouteEntries", resp.RequestId, table)
	maps.DeleteFunc(errs, func(_ int, err error) bool { return isGone(err) })
	return errs
}

// Adopt stamps the ownership marker (and the entry name) onto existing
// unmarked entries with ModifyRouteEntry, and waits until they are
// Available again.
func (t *Tables) Adopt(ctx context.Context, rs []route.Route) []route.Result {
	return t.write(ctx, rs, "ModifyRouteEntry", t.validateAdopt, t.adoptBatch, waitAdopted)
}

func (t *Tables) validateAdopt(r route.Route) error {
	if err := t.validateCreate(r); err != nil {
		return err
	}
	if r.EntryID == "" {
		return fmt.Errorf("route %s in %s has no entry ID to adopt: %w", r.Destination, r.Table, route.ErrInvalid)
	}
	return nil
}

// adoptBatch modifies the entries one by one: the API has no batch modify.
func (t *Tables) adoptBatch(ctx context.Context, table string, rs []route.Route, idx []int) map[int]error {
	errs := map[int]error{}
	for _, i := range idx {
		r := rs[i]
		if _, err := call(ctx, t.inv, "ModifyRouteEntry", func() *vpc.ModifyRouteEntryRequest {
			req := vpc.CreateModifyRouteEntryRequest()
			req.RouteTableId = table
			req.RouteEntryId = r.EntryID
			req.RouteEntryName = entryName(r.Node)
			req.Description = route.Marker{Cluster: t.clusterID, Node: r.Node}.String()
			return req
		}, t.api.ModifyRouteEntry); err != nil {
			errs[i] = fmt.Errorf("adopting entry %s (%s) in route table %s: %w", r.EntryID, r.Destination, table, err)
		}
	}
	return errs
}

type waitGoal int

const (
	waitAvailable waitGoal = iota
	waitGone
	waitAdopted
)

// wait polls the tables, with backoff and bounded by the route wait
// timeout, until every entry in verify has reached the goal, and records
// the outcome in results. An entry whose write reported an error (verify
// value non-nil) keeps that error unless the table shows the write took
// effect.
func (t *Tables) wait(ctx context.Context, rs []route.Route, results []route.Result, verify map[int]error, goal waitGoal) {
	if len(verify) == 0 {
		return
	}
	logger := klog.FromContext(ctx)
	deadline := t.now().Add(t.waitTimeout)
	lastStatus := map[int]string{}
	// unseen counts the consecutive listings that did not show a created
	// entry: the VPC API lists an entry as soon as the write returns, so
	// one that stays invisible was removed out of band, and waiting the
	// whole timeout for it would only stall the pass.
	unseen := map[int]int{}
	var lastErr error
	for poll := 0; len(verify) > 0; poll++ {
		if !sleepCtx(ctx, min(t.poll.delay(poll), max(deadline.Sub(t.now()), 0))) {
			break
		}
		want := map[string][]netip.Prefix{}
		for i := range verify {
			want[rs[i].Table] = append(want[rs[i].Table], rs[i].Destination)
		}
		snap, err := t.snapshot(ctx, want)
		switch {
		case err != nil && !route.Retryable(err) && !errors.Is(err, ErrNetwork):
			// Rejected credentials or a vanished table: no later listing
			// will tell more before the configuration changes.
			for i := range verify {
				results[i].Err = fmt.Errorf("waiting for entry %s via %s in route table %s: %w", rs[i].Destination, rs[i].NextHop, rs[i].Table, err)
				delete(verify, i)
			}
			return
		case err != nil:
			lastErr = err
			logger.V(2).Info("Listing route tables while waiting for entries failed", "err", err)
		default:
			for i, writeErr := range verify {
				done, status, err := t.check(rs[i], snap, writeErr, goal)
				if status != "" {
					lastStatus[i] = status
				}
				if !done && goal != waitGone && status == "" && writeErr == nil {
					if unseen[i]++; unseen[i] >= vanishedAfter {
						done, err = true, fmt.Errorf("entry %s via %s in route table %s was written but is no longer listed (removed out of band?): %w",
							rs[i].Destination, rs[i].NextHop, rs[i].Table, route.ErrNotAvailable)
					}
				} else {
					unseen[i] = 0
				}
				if !done {
					continue
				}
				results[i].Err = err
				if cur, ok := snap[rs[i].Key()]; ok && err == nil && goal != waitGone {
					results[i].Route.EntryID, results[i].Route.Status = cur.EntryID, cur.Status
					results[i].Route.Owner = cur.Owner
				}
				delete(verify, i)
			}
		}
		if !t.now().Before(deadline) {
			break
		}
	}
	for i := range verify {
		r := rs[i]
		state := lastStatus[i]
		if state == "" {
			state = "not visible"
		}
		err := fmt.Errorf("entry %s via %s in route table %s still %s after %v: %w", r.Destination, r.NextHop, r.Table, state, t.waitTimeout, route.ErrNotAvailable)
		if lastErr != nil {
			err = fmt.Errorf("%w (last listing error: %w)", err, lastErr)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		results[i].Err = err
	}
}

// vanishedAfter is how many consecutive listings may miss an entry that was
// written successfully before the wait gives up on it.
const vanishedAfter = 3

// check decides one entry against a table snapshot: done reports whether
// the outcome is final, err is the outcome and status the entry's status.
func (t *Tables) check(r route.Route, snap map[route.Key]route.Route, writeErr error, goal waitGoal) (done bool, status string, err error) {
	cur, present := snap[r.Key()]
	if goal == waitGone {
		// Gone also when the slot now holds another entry: one re-created
		// since the plan, which the delete (by entry ID) did not touch.
		if !present || cur.NextHop != r.NextHop || (r.EntryID != "" && cur.EntryID != r.EntryID) {
			return true, "", nil
		}
		if writeErr != nil {
			return true, cur.Status, writeErr
		}
		return false, cur.Status, nil
	}
	switch {
	case present && cur.NextHop != r.NextHop && cur.Status == route.StatusDeleting && writeErr != nil:
		// The entry in the way (refused as a duplicate, or as not yet
		// Available) is being deleted: see whether the slot frees up
		// before calling it a conflict.
		return false, cur.Status, nil
	case present && cur.NextHop != r.NextHop:
		if writeErr == nil || !errors.Is(writeErr, route.ErrConflict) {
			writeErr = fmt.Errorf("destination %s in route table %s is routed to %s by entry %s, not to %s: %w", r.Destination, r.Table, cur.NextHop, cur.EntryID, r.NextHop, route.ErrConflict)
		}
		return true, cur.Status, writeErr
	case !present:
		if errors.Is(writeErr, route.ErrConflict) {
			// Refused as a duplicate, but the entry in the way has gone
			// since (it was being deleted): writing again will do.
			return true, "", fmt.Errorf("destination %s in route table %s was occupied when written and is free now: %w", r.Destination, r.Table, route.ErrBusy)
		}
		if writeErr != nil {
			return true, "", writeErr
		}
		return false, "", nil
	case goal == waitAvailable && writeErr != nil && cur.Owner != t.clusterID:
		// The create was refused as a duplicate or as "not yet
		// Available", or its answer was lost: the entry in the slot is
		// ours only if it carries our marker. Same next hop or not,
		// an entry of someone else is a conflict, never a success.
		if cur.Status == route.StatusDeleting {
			return false, cur.Status, nil
		}
		return true, cur.Status, fmt.Errorf("destination %s in route table %s is held by entry %s without this cluster's marker: %w", r.Destination, r.Table, cur.EntryID, route.ErrConflict)
	case goal == waitAdopted && cur.Owner != t.clusterID:
		if writeErr != nil {
			return true, cur.Status, writeErr
		}
		return false, cur.Status, nil
	case cur.Status == route.StatusAvailable:
		return true, cur.Status, nil
	default:
		return false, cur.Status, nil
	}
}

// sleepCtx waits for d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
