package alisim

import (
	"fmt"
	"net/http"
)

// Error codes the simulator answers with. The names and HTTP statuses are
// those of the Alibaba Cloud API documentation where it lists them; the rest
// are marked "chosen" in docs/alisim.md and can be overridden with
// Options.ErrorStatus.
const (
	CodeSignatureDoesNotMatch     = "SignatureDoesNotMatch"
	CodeIncompleteSignature       = "IncompleteSignature"
	CodeInvalidAccessKeyNotFound  = "InvalidAccessKeyId.NotFound"
	CodeInvalidAccessKeyInactive  = "InvalidAccessKeyId.Inactive"
	CodeInvalidTimeStampExpired   = "InvalidTimeStamp.Expired"
	CodeInvalidTimeStampFormat    = "InvalidTimeStamp.Format"
	CodeSignatureNonceUsed        = "SignatureNonceUsed"
	CodeSecurityTokenExpired      = "InvalidSecurityToken.Expired"
	CodeSecurityTokenMismatch     = "InvalidSecurityToken.MismatchWithAccessKey"
	CodeMissingSecurityToken      = "MissingSecurityToken"
	CodeUnsupportedSignatureMeth  = "InvalidSignatureMethod"
	CodeForbiddenRAM              = "Forbidden.RAM"
	CodeThrottlingUser            = "Throttling.User"
	CodeInvalidAction             = "InvalidAction.NotFound"
	CodeInvalidVersion            = "InvalidVersion"
	CodeMissingParameter          = "MissingParameter"
	CodeInvalidParameter          = "InvalidParameter"
	CodeUnsupportedFormat         = "InvalidParameter.Format"
	CodeTaskConflict              = "TaskConflict"
	CodeIncorrectRouteEntryStatus = "IncorrectRouteEntryStatus"
	CodeCidrMalformed             = "InvalidCidrBlock.Malformed"
	CodeCidrInvalid               = "InvalidCidrBlock"
	CodeCidrOverlapVSwitchV6      = "OperationUnsupported.DestinationCidrBlockOverlapWithVSwitch"
	CodeCidrDuplicate             = "InvalidCIDRBlock.Duplicate"
	CodeVpcIPv6NotEnabled         = "OperationDenied.VpcIpv6NotEnabled"
	CodeQuotaExceeded             = "QuotaExceeded"
	CodeInstanceNotFound          = "InvalidInstanId.NotFound"
	CodeInstanceOtherVpc          = "OperationFailed.InstanceDismatchCurrentVpc"
	CodeInvalidNextHopType        = "InvalidNextHopType"
	CodeRouteTableNotFound        = "InvalidRouteTableId.NotFound"
	CodeRouteEntryNotFound        = "InvalidRouteEntryId.NotFound"
	CodeSystemEntry               = "OperationDenied.SystemRouteEntry"
	CodeEntryNameMalformed        = "InvalidRouteEntryName.Malformed"
	CodeDescriptionMalformed      = "InvalidDescription.Malformed"
	CodeIdempotentMismatch        = "IdempotentParameterMismatch"
	CodeMissingRouteTableID       = "MissingParam.RouteTableId"
	CodeInvalidNextToken          = "InvalidNextToken"
	CodeVpcNotFound               = "InvalidVpcId.NotFound"
	CodeVSwitchNotFound           = "InvalidVSwitchId.NotFound"
	CodeInvalidInstanceIDs        = "InvalidInstanceIds.Malformed"
	CodeInvalidStatus             = "InvalidStatus.ValueNotSupported"
	CodeRoleNotExist              = "EntityNotExist.Role"
	CodeOIDCProviderNotExist      = "EntityNotExist.OIDCProvider"
	CodeOIDCTokenInvalid          = "AuthenticationFail.OIDCToken.Invalid"
	CodeOIDCTokenExpired          = "AuthenticationFail.OIDCToken.Expired"
	CodeOIDCIssuerMismatch        = "AuthenticationFail.OIDCToken.IssuerMismatch"
	CodeOIDCAudienceMismatch      = "AuthenticationFail.OIDCToken.AudienceNotMatch"
	CodeRoleNotTrusted            = "AuthenticationFail.NoPermission"
	CodeInvalidDuration           = "InvalidParameter.DurationSeconds"
	CodeInternalError             = "InternalError"
	CodeServiceUnavailable        = "ServiceUnavailable"

	// Codes of the route entry pages that are not shared with the
	// CreateRouteEntry family above.
	CodeIllegalNextToken        = "IllegalParam.NextToken"
	CodeNextTokenExpired        = "IllegalParam.NextTokenExpired"
	CodeIllegalIPVersion        = "IllegalParam.IpVersion"
	CodeListTableNotFound       = "InvalidRouteTable.NotFound"
	CodeDeleteEntryNotFound     = "InvalidRouteEntry.NotFound"
	CodeOperationDenied         = "OperationDenied"
	CodeDeleteParamExclusive    = "ParamExclusive.RouteEntryIdAndRouteTableIdOrDestCidrBlock"
	CodeNextHopNotSupportIPv6   = "OperationFailed.NotSupportIPV6"
	CodeRouteTableQuotaExceeded = "QuotaExceeded.RouteTable"

	// Busy and transient codes the VPC answers for route writes (error
	// tables of CreateRouteEntry and DeleteRouteEntry, Terraform's retry
	// lists); the simulator's busy model answers BusyCode, fault injection
	// any of them.
	CodeIncorrcetRouteEntryStatus = "IncorrcetRouteEntryStatus" // sic, DeleteRouteEntry's table
	CodeIncorrectVpcStatus        = "IncorrectVpcStatus"
	CodeIncorrectVSwitchStatus    = "IncorrectVSwitchStatus"
	CodeIncorrectInstanceStatus   = "IncorrectInstanceStatus"
	CodeDistributeLock            = "OperationFailed.DistibuteLock" // sic
	CodeRouteTableStatus          = "IncorrectStatus.RouteTableStatus"
	CodeOperationConflict         = "OperationConflict"
	CodeSystemBusy                = "SystemBusy"
	CodeRejectedThrottling        = "Rejected.Throttling"
	CodeVPCError                  = "VPC.ERROR"

	// Per-entry failure codes of CreateRouteEntries / DeleteRouteEntries.
	FailedCidrDuplicate   = "VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE"
	FailedEntryNotExist   = "VPC_ROUTER_ENTRY_NOT_EXIST"
	FailedEntryStatus     = "VPC_ROUTE_ENTRY_STATUS_ERROR"
	FailedQuota           = "VPC_ROUTE_ENTRY_QUOTA_EXCEEDED"
	FailedCidrInvalid     = "VPC_ROUTE_ENTRY_CIDR_BLOCK_INVALID"
	FailedNextHopNotExist = "VPC_ROUTE_ENTRY_NEXT_HOP_NOT_EXIST"
	FailedSystemEntry     = "VPC_ROUTE_ENTRY_SYSTEM_FORBIDDEN"
)

// defaultStatus is the HTTP status of each code; codes not listed are 400.
var defaultStatus = map[string]int{
	CodeInvalidAccessKeyNotFound: http.StatusNotFound,
	CodeForbiddenRAM:             http.StatusForbidden,
	CodeForbbiden:                http.StatusForbidden,
	CodeInvalidAction:            http.StatusNotFound,
	CodeInstanceNotFound:         http.StatusNotFound,
	CodeInstanceOtherVpc:         http.StatusNotFound,
	CodeRouteTableNotFound:       http.StatusNotFound,
	CodeVpcNotFound:              http.StatusNotFound,
	CodeVSwitchNotFound:          http.StatusNotFound,
	CodeRoleNotExist:             http.StatusNotFound,
	CodeOIDCProviderNotExist:     http.StatusNotFound,
	// STS answers every AuthenticationFail.* with 401 (its error code
	// table).
	CodeRoleNotTrusted:       http.StatusUnauthorized,
	CodeOIDCTokenInvalid:     http.StatusUnauthorized,
	CodeOIDCTokenExpired:     http.StatusUnauthorized,
	CodeOIDCIssuerMismatch:   http.StatusUnauthorized,
	CodeOIDCAudienceMismatch: http.StatusUnauthorized,
	CodeInternalError:        http.StatusInternalServerError,
	CodeServiceUnavailable:   http.StatusServiceUnavailable,
	CodeVPCError:             http.StatusInternalServerError,
	"Vpc.Error":              http.StatusInternalServerError,
	"Internal.Error":         http.StatusInternalServerError,
}

// defaultMessage is the message of each code, as the real service words it
// where known.
var defaultMessage = map[string]string{
	CodeSignatureDoesNotMatch:     "Specified signature is not matched with our calculation.",
	CodeIncompleteSignature:       "The request signature does not conform to Aliyun standards.",
	CodeInvalidAccessKeyNotFound:  "Specified access key is not found.",
	CodeInvalidAccessKeyInactive:  "Specified access key is disabled.",
	CodeInvalidTimeStampExpired:   "Specified time stamp or date value is expired.",
	CodeInvalidTimeStampFormat:    "Specified time stamp or date value is not well formatted.",
	CodeSignatureNonceUsed:        "Specified signature nonce was used already.",
	CodeSecurityTokenExpired:      "Specified SecurityToken is expired.",
	CodeSecurityTokenMismatch:     "Specified SecurityToken mismatch with the AccessKey.",
	CodeMissingSecurityToken:      "SecurityToken is mandatory for this AccessKey.",
	CodeForbiddenRAM:              "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
	CodeThrottlingUser:            "Request was denied due to user flow control.",
	CodeInvalidAction:             "Specified api is not found, please check your url and method.",
	CodeTaskConflict:              "The operation is too frequent, please wait a moment and try again.",
	CodeIncorrectRouteEntryStatus: "Some route entry status blocked this operation.",
	CodeCidrMalformed:             "Specified CIDR block is not valid.",
	CodeCidrInvalid:               "Specified CIDR block is not valid.",
	CodeCidrDuplicate:             "Specified CIDR block is already exists.",
	CodeQuotaExceeded:             "Route entry quota exceeded in this route table.",
	CodeInstanceNotFound:          "Specified instance does not exist.",
	CodeInstanceOtherVpc:          "The specified instance does not exist in current vpc.",
	CodeRouteTableNotFound:        "Specified route table does not exist.",
	CodeRouteEntryNotFound:        "Specified route entry does not exist.",
	CodeMissingParameter:          "Miss mandatory parameter.",
	CodeInternalError:             "The request processing has failed due to some unknown error, exception or failure.",
	CodeServiceUnavailable:        "The request has failed due to a temporary failure of the server.",
	CodeForbbiden:                 "User not authorized to operate on the specified resource.",
	CodeDryRunOperation:           "Request validation has been passed with DryRun flag set.",
	CodeIllegalNextToken:          "User nextToken is illegal.",
	CodeNextTokenExpired:          "The parameter of NextTokenExpired is illegal.",
	CodeIllegalIPVersion:          "Param IpVersion illegal.",
	CodeListTableNotFound:         "The specified RouteTable was not found.",
	CodeDeleteEntryNotFound:       "Route entry not exists.",
	CodeOperationDenied:           "Specified operation is denied as route entry type is system.",
	CodeNextHopNotSupportIPv6:     "The specified next hop does not support IPv6.",
	CodeIncorrcetRouteEntryStatus: "Some route entry status blocked this operation.",
	CodeIncorrectVpcStatus:        "Current VPC status does not support this operation.",
	CodeIncorrectVSwitchStatus:    "The current virtual switch status does not support this operation.",
	CodeIncorrectInstanceStatus:   "Current instance status does not support this operation.",
	CodeDistributeLock:            "Distibute lock fail.",
	CodeRouteTableStatus:          "The status of the specified RouteTable is incorrect.",
	CodeVPCError:                  "error code 500,Internal server error.",
}

// apiError is an error answered to an API call.
type apiError struct {
	Code    string
	Message string
	Status  int // 0: from the code
	// AccessDeniedDetail is added to RAM refusals, as RAM does.
	AccessDeniedDetail map[string]string
}

// Error returns the code and message.
func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// errorf returns an apiError with the code's default message, extended by a
// formatted detail when given.
func errorf(code string, format string, args ...any) *apiError {
	msg := defaultMessage[code]
	if format != "" {
		detail := fmt.Sprintf(format, args...)
		if msg == "" {
			msg = detail
		} else {
			msg = msg + " " + detail
		}
	}
	if msg == "" {
		msg = code
	}
	return &apiError{Code: code, Message: msg}
}

// statusOf returns the HTTP status the simulator answers code with.
func (s *Simulator) statusOf(e *apiError) int {
	if st, ok := s.opts.ErrorStatus[e.Code]; ok {
		return st
	}
	if e.Status != 0 {
		return e.Status
	}
	if st, ok := defaultStatus[e.Code]; ok {
		return st
	}
	return http.StatusBadRequest
}
