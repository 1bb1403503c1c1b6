package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// TestClassifyCode covers the codes that are not transient; those are in
// transientCodes (transient_test.go).
func TestClassifyCode(t *testing.T) {
	for _, tc := range []struct {
		code   string
		status int
		want   error
	}{
		{"IncorrectStatus.cbnStatus", 400, route.ErrBusy},
		{"LastTokenProcessing", 400, route.ErrBusy},
		{"OperationFailed.LastTokenProcessing", 400, route.ErrBusy},
		{"VPC_ROUTE_ENTRY_STATUS_ERROR", 0, route.ErrBusy},
		{"", 429, route.ErrThrottled},
		{"QuotaExceeded", 400, route.ErrQuotaExceeded},
		{"QuotaExceeded.RouteEntryNum", 400, route.ErrQuotaExceeded},
		{"VPC_ROUTE_ENTRY_QUOTA_EXCEEDED", 0, route.ErrQuotaExceeded},
		{"VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE", 0, route.ErrConflict},
		{"InvalidCIDRBlock.Duplicate", 400, route.ErrConflict},
		{"VPC_ROUTER_ENTRY_NOT_EXIST", 0, route.ErrNotFound},
		{"VPC_ROUTE_ENTRY_NEXT_HOP_NOT_EXIST", 0, route.ErrNotFound},
		{"InvalidRouteTableId.NotFound", 404, route.ErrNotFound},
		{"InvalidInstanId.NotFound", 404, route.ErrNotFound},
		{"OperationFailed.InstanceDismatchCurrentVpc", 404, route.ErrNotFound},
		{"InvalidAccessKeyId.NotFound", 404, route.ErrUnauthorized},
		{"InvalidAccessKeyId.Inactive", 400, route.ErrUnauthorized},
		{"SignatureDoesNotMatch", 400, route.ErrUnauthorized},
		{"InvalidSecurityToken.Expired", 400, route.ErrUnauthorized},
		{"MissingSecurityToken", 400, route.ErrUnauthorized},
		{"Forbidden.RAM", 403, route.ErrUnauthorized},
		{"AuthenticationFail.OIDCToken.Expired", 400, route.ErrUnauthorized},
		{"InvalidParameter", 400, route.ErrInvalid},
		{"InvalidCidrBlock.Malformed", 400, route.ErrInvalid},
		{"VPC_ROUTE_ENTRY_CIDR_BLOCK_INVALID", 0, route.ErrInvalid},
		{"OperationUnsupported.DestinationCidrBlockOverlapWithVSwitch", 400, route.ErrInvalid},
		{"MissingParameter", 400, route.ErrInvalid},
		{"", 502, route.ErrBusy},
		{"", 0, nil},
		{"SomethingNew", 0, nil},
	} {
		if got := classifyCode(tc.code, tc.status); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("classifyCode(%q, %d) = %v, want %v", tc.code, tc.status, got, tc.want)
		}
	}
}

func TestClassifySDKErrors(t *testing.T) {
	server := sdkerrors.NewServerError(400, `{"Code":"TaskConflict","Message":"busy; AccessKeyId=LTAIsecret","RequestId":"R-1"}`, "")
	e := classify("CreateRouteEntries", fmt.Errorf("wrapped: %w", server))
	if !errors.Is(e, route.ErrBusy) || e.Code != "TaskConflict" || e.RequestID != "R-1" || e.HTTPStatus != 400 || !e.Retryable() {
		t.Errorf("server error classified as %+v", e)
	}
	if msg := e.Error(); !strings.Contains(msg, "CreateRouteEntries") || !strings.Contains(msg, "TaskConflict") || !strings.Contains(msg, "R-1") || strings.Contains(msg, "LTAIsecret") {
		t.Errorf("message %q: want action, code and request ID, and no server message", msg)
	}

	leakyURL := "http://127.0.0.1:1/?AccessKeyId=LTAIsecret&SecurityToken=CAISsecret&Signature=sig"
	transport := sdkerrors.NewClientError(sdkerrors.DefaultClientErrorCode, "failed", &url.Error{Op: "Post", URL: leakyURL, Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}})
	e = classify("DescribeRouteEntryList", transport)
	if !errors.Is(e, ErrNetwork) || e.Code != codeNetworkError || !e.Retryable() {
		t.Errorf("transport error classified as %+v", e)
	}
	if strings.Contains(e.Error(), "secret") || strings.Contains(e.Error(), "Signature") {
		t.Errorf("transport error message leaks the URL: %q", e.Error())
	}

	timeout := sdkerrors.NewClientError(sdkerrors.TimeoutErrorCode, "timed out", nil)
	if e := classify("DescribeInstances", timeout); !errors.Is(e, ErrNetwork) || e.Code != codeTimeout {
		t.Errorf("SDK timeout classified as %+v", e)
	}
	if e := classify("DescribeInstances", context.DeadlineExceeded); !errors.Is(e, ErrNetwork) || e.Code != codeTimeout {
		t.Errorf("deadline classified as %+v", e)
	}
	if e := classify("X", &CredentialError{Source: SourceRRSA, Reason: "token file missing"}); !errors.Is(e, route.ErrUnauthorized) {
		t.Errorf("credential error classified as %+v", e)
	}
	if e := classify("X", sdkerrors.NewClientError(sdkerrors.JsonUnmarshalErrorCode, "bad json", nil)); !errors.Is(e, ErrNetwork) {
		t.Errorf("garbled response classified as %+v", e)
	}
}

func TestErrorCodeForEvents(t *testing.T) {
	err := fmt.Errorf("creating: %w", entryError("CreateRouteEntries", "VPC_ROUTE_ENTRY_QUOTA_EXCEEDED", "r"))
	if got := route.ErrorCode(err); got != "VPC_ROUTE_ENTRY_QUOTA_EXCEEDED" {
		t.Errorf("route.ErrorCode = %q", got)
	}
	if got := route.ErrorClass(err); got != "quota" {
		t.Errorf("route.ErrorClass = %q", got)
	}
	if got := route.ErrorCode(classify("X", context.DeadlineExceeded)); got != "" {
		t.Errorf("a timeout carries cloud code %q", got)
	}
}

func TestAdaptiveLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAdaptiveLimiter(10, 20, func() time.Time { return now })
	l.Throttled()
	if got := l.Limit(); got != 5 {
		t.Fatalf("after one throttle: %v, want 5", got)
	}
	l.Throttled() // same second: one signal
	if got := l.Limit(); got != 5 {
		t.Fatalf("second throttle within a second lowered again to %v", got)
	}
	for range 10 {
		now = now.Add(2 * time.Second)
		l.Throttled()
	}
	if got := l.Limit(); got != l.floor {
		t.Fatalf("after many throttles: %v, want the floor %v", got, l.floor)
	}
	l.Succeeded() // within a second of the last cut: no increase yet
	now = now.Add(2 * time.Second)
	for range 20 {
		l.Succeeded()
	}
	if got := l.Limit(); got != 10 {
		t.Fatalf("after recovery: %v, want the configured 10", got)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := backoff{Initial: 100 * time.Millisecond, Max: time.Second, Factor: 2}
	for attempt, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		for range 20 {
			if d := b.delay(attempt); d < want/2 || d > want {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}
