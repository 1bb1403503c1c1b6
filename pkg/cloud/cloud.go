package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Cloud is the Alibaba Cloud access of one cluster: the route tables of its
// VPC (Table, a route.Table), its ECS instances (Instances, a
// route.Instances) and, for the upstream route controller, a
// k8s.io/cloud-provider Routes adapter (RoutesAdapter). All share one rate
// limiter, one set of credentials and one per-VPC write lock.
type Cloud struct {
	region           string
	vpcID            string
	credentialSource string
	tables           *Tables
	instances        *Instances
	enis             *ENIs
	permissions      *Permissions
}

// Table returns the selected route tables of the VPC as a route.Table.
func (c *Cloud) Table() *Tables { return c.tables }

// Instances returns the ECS instance lookups as a route.Instances.
func (c *Cloud) Instances() *Instances { return c.instances }

// ENIs returns the ENI source/destination check access as a route.ENIs.
func (c *Cloud) ENIs() *ENIs { return c.enis }

// Permissions returns the RAM permission probes: run them periodically
// (Run) and use Check as a readiness check.
func (c *Cloud) Permissions() *Permissions { return c.permissions }

// Region returns the region in use.
func (c *Cloud) Region() string { return c.region }

// VPCID returns the VPC in use.
func (c *Cloud) VPCID() string { return c.vpcID }

// CredentialSource names the credential source in use (credentials-dir,
// environment, rrsa, cloud-config or ecs-ram-role).
func (c *Cloud) CredentialSource() string { return c.credentialSource }

// tuning holds the knobs tests turn; production uses defaultTuning.
type tuning struct {
	retry         backoff
	poll          backoff
	getenv        credentialEnv
	refreshBefore time.Duration
	transport     http.RoundTripper
	now           func() time.Time
}

func defaultTuning() tuning {
	return tuning{
		retry: backoff{Initial: 500 * time.Millisecond, Max: 15 * time.Second, Factor: 2},
		poll:  backoff{Initial: 500 * time.Millisecond, Max: 5 * time.Second, Factor: 1.5},
		now:   time.Now,
	}
}

// New connects to Alibaba Cloud for the cluster clusterID (the ID written
// into the ownership marker of every entry) and checks the configuration
// against the cloud before returning: the VPC must exist, and the route
// tables must exist and belong to it (or, without --route-table-ids, the
// VPC must have route tables). The region and VPC come from the flags, else
// from the cloud-config, else from the instance metadata service; a setting
// given differently in two places is an error, never a guess. Metrics are
// registered into reg (nil: not registered).
func New(ctx context.Context, opts *Options, clusterID string, reg prometheus.Registerer) (*Cloud, error) {
	return newCloud(ctx, opts, clusterID, reg, defaultTuning())
}

func newCloud(ctx context.Context, opts *Options, clusterID string, reg prometheus.Registerer, tu tuning) (*Cloud, error) {
	logger := klog.FromContext(ctx)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if tu.getenv == nil {
		tu.getenv = os.Getenv
	}
	var cc *CloudConfig
	if opts.CloudConfig != "" {
		var err error
		if cc, err = LoadCloudConfig(opts.CloudConfig); err != nil {
			return nil, err
		}
	} else {
		cc = &CloudConfig{}
	}
	clusterID, err := pickSetting("--cluster-id", clusterID, "clusterID", cc.ClusterID)
	if err != nil {
		return nil, err
	}
	if clusterID == "" {
		return nil, errors.New("no cluster ID: --cluster-id is not set and the cloud-config names none")
	}
	if err := (route.Marker{Cluster: clusterID, Node: "n"}).Validate(); err != nil {
		return nil, fmt.Errorf("cluster ID %q cannot be used in the ownership marker: %w", clusterID, err)
	}

	region, err := pickSetting("--region", opts.Region, "region", cc.Region)
	if err != nil {
		return nil, err
	}
	vpcID, err := pickSetting("--vpc-id", opts.VPCID, "vpcid", cc.VPCID)
	if err != nil {
		return nil, err
	}
	tableIDs := opts.RouteTableIDs
	if len(tableIDs) > 0 && len(cc.RouteTableIDs) > 0 && !sameSet(tableIDs, cc.RouteTableIDs) {
		return nil, fmt.Errorf("--route-table-ids %v and the cloud-config's routeTableIDs %v disagree; set one of them", tableIDs, cc.RouteTableIDs)
	}
	if len(tableIDs) == 0 {
		tableIDs = cc.RouteTableIDs
	}

	var (
		mdOnce sync.Once
		md     *metadataClient
	)
	metadata := func() *metadataClient {
		mdOnce.Do(func() { md = newMetadataClient(opts.MetadataEndpoint, opts.CallTimeout) })
		return md
	}
	if region == "" {
		if region, err = metadata().RegionID(ctx); err != nil {
			return nil, fmt.Errorf("no region: --region is not set, the cloud-config names none, and %w", err)
		}
		if !validRegion(region) {
			return nil, fmt.Errorf("the metadata service returned %q, which is not a region ID; set --region", region)
		}
	}
	if vpcID == "" {
		if vpcID, err = metadata().VPCID(ctx); err != nil {
			return nil, fmt.Errorf("no VPC: --vpc-id is not set, the cloud-config names none, and %w", err)
		}
		if !validResourceID(vpcID, "vpc-") {
			return nil, fmt.Errorf("the metadata service returned %q, which is not a VPC ID; set --vpc-id", vpcID)
		}
	}

	vpcEndpoint, err := endpointFor(opts.VPCEndpoint, "vpc", region, opts.InsecureHTTP)
	if err != nil {
		return nil, fmt.Errorf("--vpc-endpoint: %w", err)
	}
	ecsEndpoint, err := endpointFor(opts.ECSEndpoint, "ecs", region, opts.InsecureHTTP)
	if err != nil {
		return nil, fmt.Errorf("--ecs-endpoint: %w", err)
	}
	stsFlag, stsName := opts.STSEndpoint, "--sts-endpoint"
	if stsFlag == "" && tu.getenv(EnvSTSEndpoint) != "" {
		// The ack-pod-identity-webhook injects the STS endpoint it wants
		// used (e.g. the VPC endpoint of the region).
		stsFlag, stsName = tu.getenv(EnvSTSEndpoint), EnvSTSEndpoint
	}
	stsEndpoint, err := endpointFor(stsFlag, "sts", region, opts.InsecureHTTP)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stsName, err)
	}

	provider, source, err := selectCredentials(ctx, credentialSettings{
		source:           opts.CredentialSource,
		dir:              opts.CredentialsDir,
		cloudConfig:      cc,
		ramRole:          opts.RAMRole,
		stsEndpoint:      stsEndpoint,
		insecureHTTP:     opts.InsecureHTTP,
		callTimeout:      opts.CallTimeout,
		metadata:         metadata,
		getenv:           tu.getenv,
		refreshBeforeEnd: tu.refreshBefore,
	})
	if err != nil {
		return nil, err
	}

	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	inv := &invoker{
		limiter:     newAdaptiveLimiter(opts.QPS, opts.Burst, tu.now),
		metrics:     m,
		callTimeout: opts.CallTimeout,
		retryFor:    max(opts.CallTimeout, opts.RouteWaitTimeout),
		backoff:     tu.retry,
		now:         tu.now,
	}
	base := clientConfig{region: region, insecureHTTP: opts.InsecureHTTP, callTimeout: opts.CallTimeout, credentials: provider, transport: tu.transport}
	vpcCfg, ecsCfg := base, base
	vpcCfg.endpoint, ecsCfg.endpoint = vpcEndpoint, ecsEndpoint
	vpcPool := newClientPool(func() (*vpc.Client, error) { return newVPCClient(vpcCfg) })
	ecsPool := newClientPool(func() (*ecs.Client, error) { return newECSClient(ecsCfg) })
	// Build one client of each now, so that a configuration the SDK
	// rejects fails at startup.
	vpcClient, err := vpcPool.get()
	if err != nil {
		return nil, err
	}
	vpcPool.put(vpcClient)
	ecsClient, err := ecsPool.get()
	if err != nil {
		return nil, err
	}
	ecsPool.put(ecsClient)
	vpcSvc, ecsSvc := pooledVPC{pool: vpcPool}, pooledECS{pool: ecsPool}

	c := &Cloud{
		region:           region,
		vpcID:            vpcID,
		credentialSource: source,
		tables: &Tables{
			vpcID:       vpcID,
			clusterID:   clusterID,
			api:         vpcSvc,
			inv:         inv,
			configured:  tableIDs,
			quota:       opts.RouteTableQuota,
			waitTimeout: opts.RouteWaitTimeout,
			poll:        tu.poll,
			now:         tu.now,
		},
		instances: &Instances{
			vpcID:       vpcID,
			api:         ecsSvc,
			inv:         inv,
			now:         tu.now,
			grace:       opts.InstanceReleaseGrace,
			byIPs:       map[string]ipLookup{},
			absentSince: map[string]time.Time{},
		},
		enis: &ENIs{
			api:         ecsSvc,
			inv:         inv,
			waitTimeout: opts.RouteWaitTimeout,
			poll:        tu.poll,
			now:         tu.now,
			primary:     map[string]string{},
		},
	}
	c.permissions = newPermissions(permissionProbes, probeConfig{adopt: opts.AdoptUnmarked, sourceDestCheck: opts.SourceDestCheck},
		probeEnv{vpcID: vpcID, vpc: vpcSvc, ecs: ecsSvc, eni: ecsSvc, inv: inv, tables: c.tables.Tables}, m, tu.now)
	c.instances.perms = c.permissions
	inv.observe = c.permissions.observe
	if err := c.checkVPC(ctx, vpcSvc, inv); err != nil {
		return nil, err
	}
	tables, err := c.tables.Tables(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(tables))
	for _, t := range tables {
		ids = append(ids, t.ID)
	}
	logger.Info("Connected to Alibaba Cloud", "region", region, "vpc", vpcID, "routeTables", ids,
		"discovered", len(tableIDs) == 0, "credentials", source, "vpcEndpoint", vpcEndpoint, "ecsEndpoint", ecsEndpoint)
	return c, nil
}

// checkVPC fails early, with a clear message, when the VPC does not exist
// in the region or the credentials are refused.
func (c *Cloud) checkVPC(ctx context.Context, api vpcAPI, inv *invoker) error {
	resp, err := call(ctx, inv, "DescribeVpcs", func() *vpc.DescribeVpcsRequest {
		req := vpc.CreateDescribeVpcsRequest()
		req.VpcId = c.vpcID
		req.PageSize = requests.NewInteger(10)
		return req
	}, api.DescribeVpcs)
	if err != nil {
		if errors.Is(err, route.ErrUnauthorized) {
			return fmt.Errorf("describing VPC %s with credentials from %s: %w", c.vpcID, c.credentialSource, err)
		}
		return fmt.Errorf("describing VPC %s in region %s: %w", c.vpcID, c.region, err)
	}
	for _, v := range resp.Vpcs.Vpc {
		if v.VpcId == c.vpcID {
			return nil
		}
	}
	return fmt.Errorf("VPC %s does not exist in region %s: %w", c.vpcID, c.region, route.ErrNotFound)
}

// pickSetting merges a flag and the cloud-config value of one setting.
func pickSetting(flag, fromFlag, field, fromConfig string) (string, error) {
	if fromFlag != "" && fromConfig != "" && fromFlag != fromConfig {
		return "", fmt.Errorf("%s %s and the cloud-config's %s %s disagree; set one of them", flag, fromFlag, field, fromConfig)
	}
	if fromFlag != "" {
		return fromFlag, nil
	}
	return fromConfig, nil
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func endpointFor(flag, product, region string, insecureHTTP bool) (string, error) {
	if flag == "" {
		return defaultEndpoint(product, region), nil
	}
	return normalizeEndpoint(flag, insecureHTTP)
}
