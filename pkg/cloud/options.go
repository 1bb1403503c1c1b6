package cloud

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Options configure the cloud layer. AddFlags registers them as the cloud
// flags of the command line.
type Options struct {
	// CloudConfig is the path of an Alibaba CCM cloud-config file.
	CloudConfig string
	// Region is the region ID, e.g. cn-chengdu.
	Region string
	// VPCID is the VPC of the cluster.
	VPCID string
	// RouteTableIDs selects route tables; empty means every route table of
	// the VPC.
	RouteTableIDs []string

	// VPCEndpoint, ECSEndpoint and STSEndpoint override the API endpoints
	// (host[:port]); empty means the VPC-internal endpoint of the region.
	VPCEndpoint string
	ECSEndpoint string
	STSEndpoint string
	// MetadataEndpoint is the URL of the ECS instance metadata service.
	MetadataEndpoint string
	// InsecureHTTP makes API calls over plain HTTP (simulator only).
	InsecureHTTP bool

	// QPS and Burst are the client-side rate limit of all API calls.
	QPS   float64
	Burst int
	// CallTimeout bounds every single API call.
	CallTimeout time.Duration
	// RouteWaitTimeout bounds the wait for written entries to become
	// Available (or gone).
	RouteWaitTimeout time.Duration
	// RouteTableQuota is the number of custom entries a route table accepts.
	RouteTableQuota int

	// CredentialsDir holds access-key-id, access-key-secret and optionally
	// security-token files, re-read when they change.
	CredentialsDir string
	// RAMRole is the ECS RAM role name; empty asks the metadata service.
	RAMRole string
	// CredentialSource is auto (the first configured source, in the
	// documented order) or the one source to use.
	CredentialSource string

	// InstanceReleaseGrace is how long an instance must be missing from
	// by-ID lookups, with the permissions proven all along, before it
	// counts as released (and its routes are deleted).
	InstanceReleaseGrace time.Duration
	// PermissionCheckInterval is how often the RAM permissions are probed.
	PermissionCheckInterval time.Duration
	// AdoptUnmarked tells the cloud layer that ModifyRouteEntry is needed
	// (--adopt-unmarked, a route flag the command copies here).
	AdoptUnmarked bool
	// SourceDestCheck is --source-dest-check (a route flag the command
	// copies here): which ENI actions are needed.
	SourceDestCheck string
}

// NewOptions returns the options with their defaults.
func NewOptions() *Options {
	return &Options{
		MetadataEndpoint: DefaultMetadataEndpoint,
		QPS:              10,
		Burst:            20,
		CallTimeout:      30 * time.Second,
		RouteWaitTimeout: 2 * time.Minute,
		RouteTableQuota:  200,
		CredentialSource: SourceAuto,

		InstanceReleaseGrace:    5 * time.Minute,
		PermissionCheckInterval: time.Minute,
	}
}

// AddFlags registers the cloud flags. Defaults are the current values of o,
// so call it on NewOptions().
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CloudConfig, "cloud-config", o.CloudConfig, "Path of an Alibaba Cloud CCM cloud-config JSON file (region, VPC, route tables and AccessKey are read from it when not set by flags).")
	fs.StringVar(&o.Region, "region", o.Region, "Alibaba Cloud region ID, e.g. cn-chengdu. Default: from the cloud-config, else from the instance metadata service.")
	fs.StringVar(&o.VPCID, "vpc-id", o.VPCID, "ID of the cluster's VPC. Default: from the cloud-config, else from the instance metadata service.")
	fs.StringSliceVar(&o.RouteTableIDs, "route-table-ids", o.RouteTableIDs, "Comma-separated route table IDs to publish routes to. Empty: every route table of the VPC.")
	fs.StringVar(&o.VPCEndpoint, "vpc-endpoint", o.VPCEndpoint, "VPC API endpoint (host[:port]). Default: vpc-vpc.<region>.aliyuncs.com.")
	fs.StringVar(&o.ECSEndpoint, "ecs-endpoint", o.ECSEndpoint, "ECS API endpoint (host[:port]). Default: ecs-vpc.<region>.aliyuncs.com.")
	fs.StringVar(&o.STSEndpoint, "sts-endpoint", o.STSEndpoint, "STS endpoint for RRSA (host[:port]). Default: sts-vpc.<region>.aliyuncs.com.")
	fs.StringVar(&o.MetadataEndpoint, "metadata-endpoint", o.MetadataEndpoint, "URL of the ECS instance metadata service, used only when the region, VPC or credentials must come from it.")
	fs.BoolVar(&o.InsecureHTTP, "cloud-insecure-http", o.InsecureHTTP, "Call the cloud API endpoints over plain HTTP. Only for the simulator.")
	fs.Float64Var(&o.QPS, "cloud-qps", o.QPS, "Client-side rate limit of cloud API calls per second (lowered temporarily when the cloud throttles).")
	fs.IntVar(&o.Burst, "cloud-burst", o.Burst, "Burst of the client-side cloud API rate limit.")
	fs.DurationVar(&o.CallTimeout, "cloud-call-timeout", o.CallTimeout, "Timeout of a single cloud API call.")
	fs.DurationVar(&o.RouteWaitTimeout, "route-wait-timeout", o.RouteWaitTimeout, "How long to wait for written route entries to become Available (or gone).")
	fs.IntVar(&o.RouteTableQuota, "route-table-quota", o.RouteTableQuota, "Custom route entries a route table accepts (the VPC quota).")
	fs.StringVar(&o.CredentialsDir, "credentials-dir", o.CredentialsDir, "Directory with access-key-id, access-key-secret and optional security-token files (a mounted Secret; re-read when they change).")
	fs.DurationVar(&o.InstanceReleaseGrace, "instance-release-grace", o.InstanceReleaseGrace, "How long an ECS instance must be missing from lookups by ID, with the RAM permissions proven throughout, before it counts as released and its routes are deleted.")
	fs.DurationVar(&o.PermissionCheckInterval, "permission-check-interval", o.PermissionCheckInterval, "How often the RAM permissions the publisher needs are probed (DryRun where the API offers it); a missing one makes the replica unready.")
	fs.StringVar(&o.RAMRole, "ram-role", o.RAMRole, "ECS RAM role name for credentials from the metadata service. Empty: the role attached to the instance.")
	fs.StringVar(&o.CredentialSource, "credential-source", o.CredentialSource, "Where credentials come from: auto (the first configured of credentials-dir, environment, rrsa, cloud-config, ecs-ram-role) or exactly one of them, which must then be configured.")
}

// Validate checks the options without any I/O. Each error is one sentence
// naming the flag.
func (o *Options) Validate() error {
	var errs []error
	if o.Region != "" && !validRegion(o.Region) {
		errs = append(errs, fmt.Errorf("--region %q is not a region ID such as cn-chengdu", o.Region))
	}
	if o.VPCID != "" && !validResourceID(o.VPCID, "vpc-") {
		errs = append(errs, fmt.Errorf("--vpc-id %q is not a VPC ID such as vpc-2vc0000000000000001", o.VPCID))
	}
	seen := map[string]bool{}
	for _, id := range o.RouteTableIDs {
		id = strings.TrimSpace(id)
		if !validResourceID(id, "vtb-") {
			errs = append(errs, fmt.Errorf("--route-table-ids: %q is not a route table ID such as vtb-2vc0000000000000001", id))
		}
		if seen[id] {
			errs = append(errs, fmt.Errorf("--route-table-ids: %s is listed twice", id))
		}
		seen[id] = true
	}
	for flag, v := range map[string]string{"--vpc-endpoint": o.VPCEndpoint, "--ecs-endpoint": o.ECSEndpoint, "--sts-endpoint": o.STSEndpoint} {
		if v == "" {
			continue
		}
		if _, err := normalizeEndpoint(v, o.InsecureHTTP); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	if o.MetadataEndpoint != "" {
		u, err := url.Parse(o.MetadataEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--metadata-endpoint %q is not an http(s) URL", o.MetadataEndpoint))
		}
	}
	if !slices.Contains(credentialSources, o.CredentialSource) {
		errs = append(errs, fmt.Errorf("--credential-source must be one of %s, not %q", strings.Join(credentialSources, ", "), o.CredentialSource))
	}
	if o.QPS <= 0 {
		errs = append(errs, fmt.Errorf("--cloud-qps must be positive, not %v", o.QPS))
	}
	if o.Burst < 1 {
		errs = append(errs, fmt.Errorf("--cloud-burst must be at least 1, not %d", o.Burst))
	}
	if o.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--cloud-call-timeout must be positive, not %v", o.CallTimeout))
	}
	if o.RouteWaitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--route-wait-timeout must be positive, not %v", o.RouteWaitTimeout))
	}
	if o.InstanceReleaseGrace < 0 {
		errs = append(errs, fmt.Errorf("--instance-release-grace must not be negative, not %v", o.InstanceReleaseGrace))
	}
	if o.PermissionCheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("--permission-check-interval must be positive, not %v", o.PermissionCheckInterval))
	}
	if o.RouteTableQuota < 1 {
		errs = append(errs, fmt.Errorf("--route-table-quota must be at least 1, not %d", o.RouteTableQuota))
	}
	return errors.Join(errs...)
}

// normalizeEndpoint accepts host[:port] or a URL with a scheme matching
// --cloud-insecure-http, and returns host[:port].
func normalizeEndpoint(v string, insecureHTTP bool) (string, error) {
	host := v
	if scheme, rest, ok := strings.Cut(v, "://"); ok {
		switch {
		case scheme == "http" && !insecureHTTP:
			return "", fmt.Errorf("%q uses http:// but --cloud-insecure-http is not set", v)
		case scheme == "https" && insecureHTTP:
			return "", fmt.Errorf("%q uses https:// but --cloud-insecure-http is set", v)
		case scheme != "http" && scheme != "https":
			return "", fmt.Errorf("%q has an unknown scheme", v)
		}
		host = strings.TrimSuffix(rest, "/")
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", fmt.Errorf("%q is not a host[:port]", v)
	}
	if strings.Contains(host, ":") {
		if _, _, err := net.SplitHostPort(host); err != nil {
			return "", fmt.Errorf("%q is not a host[:port]", v)
		}
	}
	return host, nil
}

// Endpoints of a region. Calls go to the VPC-internal endpoints by default:
// the publisher runs on ECS inside the VPC, and these endpoints need no
// Internet access. Use the flags to choose the public ones
// (vpc.<region>.aliyuncs.com, ecs.<region>.aliyuncs.com,
// sts.<region>.aliyuncs.com).
func defaultEndpoint(product, region string) string {
	return product + "-vpc." + region + ".aliyuncs.com"
}
