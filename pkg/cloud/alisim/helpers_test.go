package alisim_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/sts"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

const (
	testKeyID     = "LTAI5tSimulatorTestKey"
	testKeySecret = "simulator-test-secret"
	region        = alisim.DefaultRegion
	vpcID         = alisim.DefaultVPCID
	tableID       = alisim.DefaultTableID
)

// start runs a simulator with the test key and the given options.
func start(t *testing.T, opts alisim.Options) *alisim.TestServer {
	t.Helper()
	opts.AccessKeyID, opts.AccessKeySecret = testKeyID, testKeySecret
	return alisim.StartForTest(t, opts)
}

func sdkConfig() *sdk.Config { return sdk.NewConfig().WithScheme("HTTP").WithTimeout(10 * time.Second) }

func vpcClient(t *testing.T, ts *alisim.TestServer, cred auth.Credential) *vpc.Client {
	t.Helper()
	c, err := vpc.NewClientWithOptions(region, sdkConfig(), cred)
	if err != nil {
		t.Fatalf("vpc client: %v", err)
	}
	c.Domain = ts.APIEndpoint
	return c
}

func ecsClient(t *testing.T, ts *alisim.TestServer, cred auth.Credential) *ecs.Client {
	t.Helper()
	c, err := ecs.NewClientWithOptions(region, sdkConfig(), cred)
	if err != nil {
		t.Fatalf("ecs client: %v", err)
	}
	c.Domain = ts.APIEndpoint
	return c
}

func stsClient(t *testing.T, ts *alisim.TestServer, cred auth.Credential) *sts.Client {
	t.Helper()
	c, err := sts.NewClientWithOptions(region, sdkConfig(), cred)
	if err != nil {
		t.Fatalf("sts client: %v", err)
	}
	c.Domain = ts.APIEndpoint
	return c
}

func testCred() auth.Credential { return credentials.NewAccessKeyCredential(testKeyID, testKeySecret) }

// wantServerError checks err is an SDK ServerError with code and status.
func wantServerError(t *testing.T, err error, code string, status int) {
	t.Helper()
	_ = serverError(t, err, code, status)
}

// serverError checks err like wantServerError and returns it for further
// checks.
func serverError(t *testing.T, err error, code string, status int) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("want ServerError %s, got %v", code, err)
	}
	if se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("want %s/%d, got %s/%d: %s", code, status, se.ErrorCode(), se.HttpStatus(), se.Message())
	}
	if se.RequestId() == "" {
		t.Errorf("error %s has no RequestId", code)
	}
	return se
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func credentialsWithSecret(secret string) auth.Credential {
	return credentials.NewAccessKeyCredential(testKeyID, secret)
}

func credentialsFor(id, secret string) auth.Credential {
	return credentials.NewAccessKeyCredential(id, secret)
}
