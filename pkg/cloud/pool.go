package cloud

import (
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

// maxIdleClients is how many idle SDK clients a pool keeps.
const maxIdleClients = 8

// clientPool hands out SDK clients one call at a time. An SDK client is not
// safe for concurrent calls: every call rewrites the timeouts of its
// http.Client and transport. Concurrent callers (the upstream route
// controller creates routes from many goroutines; a call abandoned at its
// deadline still runs) therefore each borrow their own client.
type clientPool[C any] struct {
	idle  chan C
	newFn func() (C, error)
}

func newClientPool[C any](newFn func() (C, error)) *clientPool[C] {
	return &clientPool[C]{idle: make(chan C, maxIdleClients), newFn: newFn}
}

func (p *clientPool[C]) get() (C, error) {
	select {
	case c := <-p.idle:
		return c, nil
	default:
		return p.newFn()
	}
}

func (p *clientPool[C]) put(c C) {
	select {
	case p.idle <- c:
	default: // enough idle clients; let this one go
	}
}

// with runs fn with a borrowed client.
func with[C, Resp any](p *clientPool[C], fn func(C) (Resp, error)) (Resp, error) {
	c, err := p.get()
	if err != nil {
		var zero Resp
		return zero, err
	}
	defer p.put(c)
	return fn(c)
}

// pooledVPC is a vpcAPI over a pool of *vpc.Client.
type pooledVPC struct{ pool *clientPool[*vpc.Client] }

var _ vpcAPI = pooledVPC{}

func (p pooledVPC) DescribeVpcs(r *vpc.DescribeVpcsRequest) (*vpc.DescribeVpcsResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.DescribeVpcsResponse, error) { return c.DescribeVpcs(r) })
}

func (p pooledVPC) DescribeRouteTableList(r *vpc.DescribeRouteTableListRequest) (*vpc.DescribeRouteTableListResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.DescribeRouteTableListResponse, error) { return c.DescribeRouteTableList(r) })
}

func (p pooledVPC) DescribeRouteEntryList(r *vpc.DescribeRouteEntryListRequest) (*vpc.DescribeRouteEntryListResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.DescribeRouteEntryListResponse, error) { return c.DescribeRouteEntryList(r) })
}

func (p pooledVPC) CreateRouteEntries(r *vpc.CreateRouteEntriesRequest) (*vpc.CreateRouteEntriesResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.CreateRouteEntriesResponse, error) { return c.CreateRouteEntries(r) })
}

func (p pooledVPC) DeleteRouteEntries(r *vpc.DeleteRouteEntriesRequest) (*vpc.DeleteRouteEntriesResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.DeleteRouteEntriesResponse, error) { return c.DeleteRouteEntries(r) })
}

func (p pooledVPC) ModifyRouteEntry(r *vpc.ModifyRouteEntryRequest) (*vpc.ModifyRouteEntryResponse, error) {
	return with(p.pool, func(c *vpc.Client) (*vpc.ModifyRouteEntryResponse, error) { return c.ModifyRouteEntry(r) })
}

// pooledECS is an ecsAPI over a pool of *ecs.Client.
type pooledECS struct{ pool *clientPool[*ecs.Client] }

var _ ecsAPI = pooledECS{}

func (p pooledECS) DescribeInstances(r *ecs.DescribeInstancesRequest) (*ecs.DescribeInstancesResponse, error) {
	return with(p.pool, func(c *ecs.Client) (*ecs.DescribeInstancesResponse, error) { return c.DescribeInstances(r) })
}
