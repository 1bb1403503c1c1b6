package cloud

import (
	"fmt"
	"net/http"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

// vpcAPI is the part of the VPC API the package uses. *vpc.Client satisfies
// it; tests substitute hand-written doubles or talk to the simulator.
type vpcAPI interface {
	DescribeVpcs(*vpc.DescribeVpcsRequest) (*vpc.DescribeVpcsResponse, error)
	DescribeRouteTableList(*vpc.DescribeRouteTableListRequest) (*vpc.DescribeRouteTableListResponse, error)
	DescribeRouteEntryList(*vpc.DescribeRouteEntryListRequest) (*vpc.DescribeRouteEntryListResponse, error)
	CreateRouteEntries(*vpc.CreateRouteEntriesRequest) (*vpc.CreateRouteEntriesResponse, error)
	DeleteRouteEntries(*vpc.DeleteRouteEntriesRequest) (*vpc.DeleteRouteEntriesResponse, error)
	ModifyRouteEntry(*vpc.ModifyRouteEntryRequest) (*vpc.ModifyRouteEntryResponse, error)
}

// ecsAPI is the part of the ECS API the package uses.
type ecsAPI interface {
	DescribeInstances(*ecs.DescribeInstancesRequest) (*ecs.DescribeInstancesResponse, error)
}

var (
	_ vpcAPI = (*vpc.Client)(nil)
	_ ecsAPI = (*ecs.Client)(nil)
)

// clientConfig is what the SDK clients are built from.
type clientConfig struct {
	region       string
	endpoint     string // host[:port]
	insecureHTTP bool
	callTimeout  time.Duration
	credentials  credentials.CredentialsProvider
	transport    http.RoundTripper
}

// sdkConfig returns the SDK configuration: HTTPS unless the simulator is
// used, no SDK-side retries (the invoker retries, with classification and
// metrics) and the call timeout as the SDK's own HTTP timeout.
func (c clientConfig) sdkConfig() *sdk.Config {
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	cfg.MaxRetryTime = 0
	cfg.Scheme = "HTTPS"
	if c.insecureHTTP {
		cfg.Scheme = "HTTP"
	}
	cfg.Timeout = c.callTimeout
	if c.transport != nil {
		cfg.Transport = c.transport
	} else {
		// A transport of its own per client: the SDK rewrites the
		// transport's dialer and TLS settings on every call.
		cfg.HttpTransport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return cfg
}

func newVPCClient(c clientConfig) (*vpc.Client, error) {
	client, err := vpc.NewClientWithOptions(c.region, c.sdkConfig(), c.credentials)
	if err != nil {
		return nil, fmt.Errorf("creating VPC API client: %w", err)
	}
	c.apply(&client.Client)
	return client, nil
}

func newECSClient(c clientConfig) (*ecs.Client, error) {
	client, err := ecs.NewClientWithOptions(c.region, c.sdkConfig(), c.credentials)
	if err != nil {
		return nil, fmt.Errorf("creating ECS API client: %w", err)
	}
	c.apply(&client.Client)
	return client, nil
}

// apply pins the endpoint (no SDK endpoint resolution, which could call the
// Location service) and the SDK's read and connect timeouts.
func (c clientConfig) apply(client *sdk.Client) {
	client.Domain = c.endpoint
	client.SetReadTimeout(c.callTimeout)
	connect := c.callTimeout
	if connect > 10*time.Second {
		connect = 10 * time.Second
	}
	client.SetConnectTimeout(connect)
}
