package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// ErrNetwork is the class of failures where the cloud API could not be
// reached or did not answer before the call timeout. Such calls are retried;
// a write that timed out may nevertheless have been applied, which the
// caller resolves by listing the table again.
var ErrNetwork = errors.New("cloud API unreachable or timed out")

// Pseudo error codes used in metrics and APIError.Code when the cloud gave
// no code of its own.
const (
	codeSuccess      = "Success"
	codeTimeout      = "Timeout"
	codeNetworkError = "NetworkError"
	codeClientError  = "ClientError"
	// codeFenced: a write was not sent because the leader lease may be
	// lost (route.ErrFenced).
	codeFenced = "Fenced"
)

// APIError is a failed cloud API call or a failed entry of a batched call.
//
// Its message names the action, the Alibaba error code, the HTTP status and
// the request ID, which is what a support ticket needs. It deliberately
// leaves out the SDK's own error text: that text carries response headers,
// the string to sign and, for transport errors, the request URL with the
// AccessKeyId and the SecurityToken in its query.
type APIError struct {
	// Action is the API action, e.g. CreateRouteEntries.
	Action string
	// Code is the Alibaba error code (or FailedCode of a batch entry), or
	// one of Timeout, NetworkError, ClientError.
	Code string
	// RequestID is the cloud's request ID, when there was a response.
	RequestID string
	// HTTPStatus is the HTTP status of the response, 0 without a response.
	HTTPStatus int
	// Detail is a short, secret-free description of a transport failure.
	Detail string

	class error
	// entry marks a per-entry failure of a batched call, as opposed to a
	// failure of the call itself.
	entry bool
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Action)
	b.WriteString(": ")
	if e.class != nil {
		b.WriteString(e.class.Error())
	} else {
		b.WriteString("failed")
	}
	if e.Code != "" {
		b.WriteString(" (code ")
		b.WriteString(e.Code)
		b.WriteString(")")
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.HTTPStatus)
	}
	if e.RequestID != "" {
		b.WriteString(" request ")
		b.WriteString(e.RequestID)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the error class (route.ErrThrottled, route.ErrBusy, ...,
// ErrNetwork), so that callers decide with errors.Is. It is nil for codes
// that fit no class.
func (e *APIError) Unwrap() error { return e.class }

// Retryable reports whether the same request may succeed later.
func (e *APIError) Retryable() bool { return isRetryableClass(e.class) }

// ErrorCode returns the Alibaba error code (route.ErrorCode reads it for
// events), or "" when the failure has no cloud code (timeouts, network and
// client-side errors).
func (e *APIError) ErrorCode() string {
	switch e.Code {
	case codeTimeout, codeNetworkError, codeClientError, codeFenced:
		return ""
	}
	return e.Code
}

func isRetryableClass(class error) bool {
	return errors.Is(class, route.ErrThrottled) || errors.Is(class, route.ErrBusy) || errors.Is(class, ErrNetwork)
}

// Exact error codes of the VPC, ECS and STS APIs and of batch entries
// (FailedRouteEntries[].FailedCode), by class. Codes not listed here are
// classified by the prefix and suffix rules of classifyCode.
var codeClasses = map[string]error{
	// The VPC serializes writes and reports a busy VPC or entry in many
	// ways: the error tables of CreateRouteEntry and DeleteRouteEntry
	// (misspellings included, they are the real codes) and the retry
	// lists of Terraform's alicloud_route_entry. Some of them come with
	// HTTP 403 or 5xx; the code decides, never the status.
	"TaskConflict":                        route.ErrBusy,
	"IncorrectRouteEntryStatus":           route.ErrBusy,
	"IncorrcetRouteEntryStatus":           route.ErrBusy,
	"OperationConflict":                   route.ErrBusy,
	"IncorrectStatus":                     route.ErrBusy,
	"IncorrectStatus.RouteTableStatus":    route.ErrBusy,
	"IncorrectVpcStatus":                  route.ErrBusy,
	"IncorrectVSwitchStatus":              route.ErrBusy,
	"IncorrectInstanceStatus":             route.ErrBusy,
	"IncorrectHaVipStatus":                route.ErrBusy,
	"InvalidVBRStatus":                    route.ErrBusy,
	"OperationFailed.DistibuteLock":       route.ErrBusy,
	"SystemBusy":                          route.ErrBusy,
	"System.ServiceBusy":                  route.ErrBusy,
	"ServiceUnavailable":                  route.ErrBusy,
	"InternalError":                       route.ErrBusy,
	"Internal.Error":                      route.ErrBusy,
	"VPC.ERROR":                           route.ErrBusy,
	"Vpc.Error":                           route.ErrBusy,
	"UnknownError":                        route.ErrBusy,
	"LastTokenProcessing":                 route.ErrBusy,
	"OperationFailed.LastTokenProcessing": route.ErrBusy,
	"VPC_TASK_CONFLICT":                   route.ErrBusy,
	"VPC_ROUTE_ENTRY_STATUS_ERROR":        route.ErrBusy,
	"VPC_ROUTE_TABLE_STATUS_ERROR":        route.ErrBusy,
	// ENI changes: another change of the ENI is in progress (the Alibaba
	// CCM retries ModifyNetworkInterfaceAttribute on the first; Terraform's
	// alicloud provider retries ENI writes on the other two).
	"InvalidOperation.Conflict":        route.ErrBusy,
	"InvalidOperation.InvalidEniState": route.ErrBusy,
	"InvalidOperation.InvalidEcsState": route.ErrBusy,

	"Rejected.Throttling": route.ErrThrottled,

	"VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE": route.ErrConflict,
	"InvalidCIDRBlock.Duplicate":           route.ErrConflict,
	"RouterEntryConflict.Duplicated":       route.ErrConflict,
	"InvalidRouteEntry.Duplicate":          route.ErrConflict,

	"VPC_ROUTER_ENTRY_NOT_EXIST": route.ErrNotFound,
	"VPC_ROUTE_ENTRY_NOT_EXIST":  route.ErrNotFound,
	"VPC_ROUTE_TABLE_NOT_EXIST":  route.ErrNotFound,
	"VPC_INSTANCE_NOT_EXIST":     route.ErrNotFound,

	// An IPv6 route to an instance without an IPv6 address (error table
	// of CreateRouteEntry): the node needs fixing, not a retry.
	"OperationFailed.NotSupportIPV6": route.ErrInvalid,

	"VPC_ROUTE_ENTRY_QUOTA_EXCEEDED": route.ErrQuotaExceeded,
	"QuotaExceeded":                  route.ErrQuotaExceeded,

	"SignatureDoesNotMatch":           route.ErrUnauthorized,
	"IncompleteSignature":             route.ErrUnauthorized,
	"SignatureNonceUsed":              route.ErrBusy, // a nonce collision: a fresh request succeeds
	"NoPermission":                    route.ErrUnauthorized,
	"UnauthorizedOperation":           route.ErrUnauthorized,
	"InvalidAccessKeySecret":          route.ErrUnauthorized,
	"AuthenticationFailed":            route.ErrUnauthorized,
	"InvalidAuthorization":            route.ErrUnauthorized,
	"InvalidParameter.OIDCToken":      route.ErrUnauthorized,
	"AuthenticationFail.NoPermission": route.ErrUnauthorized,

	"MissingSecurityToken": route.ErrUnauthorized,
	"MissingParameter":     route.ErrInvalid,
}

// classifyCode maps an Alibaba error code (and the HTTP status, when the code
// is unknown) to an error class. It looks at codes only, never at messages:
// messages are free text that changes between API versions and languages.
func classifyCode(code string, httpStatus int) error {
	if permissionDeniedCodes[code] {
		return ErrPermissionDenied
	}
	if class, ok := codeClasses[code]; ok {
		return class
	}
	upper := strings.ToUpper(code)
	switch {
	case strings.HasPrefix(code, "Throttling"), strings.HasPrefix(upper, "FLOW_CONTROL"), strings.HasPrefix(code, "Throttled"):
		return route.ErrThrottled
	case strings.HasPrefix(code, "IncorrectStatus."), strings.HasPrefix(code, "OperationConflict"),
		strings.HasPrefix(code, "TaskConflict"), strings.HasPrefix(code, "ServiceUnavailable"),
		strings.HasPrefix(code, "OperationFailed.LastTokenProcessing"):
		return route.ErrBusy
	// Credential codes first: InvalidAccessKeyId.NotFound is a credential
	// problem, not a missing resource.
	case strings.HasPrefix(code, "InvalidAccessKeyId"), strings.HasPrefix(code, "InvalidSecurityToken"),
		strings.HasPrefix(code, "Forbidden"), strings.HasPrefix(code, "NoPermission"),
		strings.HasPrefix(code, "SignatureDoesNotMatch"), strings.HasPrefix(code, "Unauthorized"),
		strings.HasPrefix(code, "AccessDenied"), strings.HasPrefix(code, "InvalidOIDCToken"),
		strings.HasPrefix(code, "AuthenticationFail"):
		return route.ErrUnauthorized
	case strings.HasPrefix(code, "QuotaExceed"), strings.Contains(upper, "QUOTA"):
		return route.ErrQuotaExceeded
	case strings.HasSuffix(code, ".Duplicate"), strings.HasSuffix(code, ".Duplicated"),
		strings.HasSuffix(code, ".AlreadyExist"), strings.HasSuffix(upper, "_DUPLICATE"),
		strings.HasSuffix(code, ".Conflict"):
		return route.ErrConflict
	case strings.HasSuffix(code, ".NotFound"), strings.HasSuffix(code, ".NotExist"),
		strings.HasSuffix(upper, "_NOT_EXIST"), strings.HasSuffix(upper, "_NOT_FOUND"):
		return route.ErrNotFound
	case strings.HasPrefix(code, "Invalid"), strings.HasPrefix(code, "MissingParam"),
		strings.HasPrefix(code, "IllegalParam"), strings.HasPrefix(code, "Unsupported"),
		strings.HasPrefix(code, "OperationDenied"), strings.HasPrefix(upper, "VPC_"):
		return route.ErrInvalid
	}
	switch {
	case httpStatus == http.StatusTooManyRequests:
		return route.ErrThrottled
	case httpStatus == http.StatusUnauthorized, httpStatus == http.StatusForbidden:
		return route.ErrUnauthorized
	case httpStatus == http.StatusNotFound:
		return route.ErrNotFound
	case httpStatus == http.StatusConflict:
		return route.ErrBusy
	case httpStatus >= 500:
		return route.ErrBusy
	case httpStatus >= 400:
		return route.ErrInvalid
	}
	return nil
}

// classify turns an error returned by an SDK call into an *APIError. It
// never copies the SDK's error text (see APIError).
func classify(action string, err error) *APIError {
	if err == nil {
		return nil
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var serverErr *sdkerrors.ServerError
	if errors.As(err, &serverErr) {
		class := classifyCode(serverErr.ErrorCode(), serverErr.HttpStatus())
		if _, ok := serverErr.AccessDeniedDetail()["AuthAction"]; ok {
			// RAM names the refused action: a permission, whatever the code.
			class = ErrPermissionDenied
		}
		return &APIError{
			Action:     action,
			Code:       serverErr.ErrorCode(),
			RequestID:  serverErr.RequestId(),
			HTTPStatus: serverErr.HttpStatus(),
			class:      class,
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return &APIError{Action: action, Code: codeTimeout, Detail: "no answer before the call timeout", class: ErrNetwork}
	}
	if errors.Is(err, context.Canceled) {
		return &APIError{Action: action, Code: codeTimeout, Detail: "canceled before the cloud answered", class: ErrNetwork}
	}
	var clientErr *sdkerrors.ClientError
	if errors.As(err, &clientErr) {
		if clientErr.ErrorCode() == sdkerrors.TimeoutErrorCode {
			return &APIError{Action: action, Code: codeTimeout, Detail: "no answer before the call timeout", class: ErrNetwork}
		}
		if origin := clientErr.OriginError(); origin != nil {
			if transport := transportError(action, origin); transport != nil {
				return transport
			}
		}
		// The remaining client errors are local: bad parameters, an
		// unparsable response, a credential provider failure. The
		// credential providers of this package return errors without
		// secrets; the SDK's message may still quote a response body, so
		// only its code is kept.
		return &APIError{Action: action, Code: clientErr.ErrorCode(), Detail: "the SDK rejected the call", class: clientErrorClass(clientErr.ErrorCode())}
	}
	if transport := transportError(action, err); transport != nil {
		return transport
	}
	var credErr *CredentialError
	if errors.As(err, &credErr) {
		class := route.ErrUnauthorized
		if credErr.Temporary() {
			class = credErr.Class
		}
		return &APIError{Action: action, Code: codeClientError, Detail: credErr.Error(), class: class}
	}
	return &APIError{Action: action, Code: codeClientError, Detail: fmt.Sprintf("unexpected %T", err)}
}

func clientErrorClass(code string) error {
	switch code {
	case sdkerrors.JsonUnmarshalErrorCode:
		// A truncated or garbled response, typically from a proxy: retry.
		return ErrNetwork
	case sdkerrors.InvalidParamErrorCode, sdkerrors.MissingParamErrorCode:
		return route.ErrInvalid
	}
	return nil
}

// transportError recognizes transport failures. A *url.Error carries the
// full request URL (with AccessKeyId, SecurityToken and Signature), so only
// its operation and the inner network error are kept.
func transportError(action string, err error) *APIError {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		inner := urlErr.Err
		code := codeNetworkError
		if urlErr.Timeout() {
			code = codeTimeout
		}
		detail := urlErr.Op + " request failed"
		var opErr *net.OpError
		if errors.As(inner, &opErr) {
			detail += ": " + opErr.Error()
		} else if urlErr.Timeout() {
			detail += ": timeout"
		}
		return &APIError{Action: action, Code: code, Detail: detail, class: ErrNetwork}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		code := codeNetworkError
		if netErr.Timeout() {
			code = codeTimeout
		}
		return &APIError{Action: action, Code: code, Detail: "network error", class: ErrNetwork}
	}
	return nil
}

// entryError builds the error of one failed entry of a batched call.
func entryError(action, failedCode, requestID string) *APIError {
	return &APIError{Action: action, Code: failedCode, RequestID: requestID, class: classifyCode(failedCode, 0), entry: true}
}
