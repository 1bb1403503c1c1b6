package route

import "errors"

// Error classes. The cloud layer wraps every failure in one of these (plus
// the cloud's own error code and request ID), so the controller decides what
// to do with errors.Is and never looks at error strings.
var (
	// ErrThrottled: the cloud rate-limited us; retry later, slower.
	ErrThrottled = errors.New("throttled by the cloud API")
	// ErrBusy: the VPC or entry is busy with another operation; retry.
	ErrBusy = errors.New("VPC busy with another operation")
	// ErrQuotaExceeded: the route table is full; needs a quota increase.
	ErrQuotaExceeded = errors.New("route table quota exceeded")
	// ErrConflict: another entry already occupies the destination.
	ErrConflict = errors.New("destination already routed by another entry")
	// ErrNotFound: the entry, table or instance does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the cloud rejected the request as invalid; retrying the
	// same request will not help.
	ErrInvalid = errors.New("invalid request")
	// ErrUnauthorized: bad, expired or insufficient credentials; fatal until
	// the configuration changes.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotAvailable: the entry was written but did not become Available
	// before the deadline.
	ErrNotAvailable = errors.New("entry did not become Available in time")
	// ErrNoInstance: the node cannot be mapped to an ECS instance (yet).
	ErrNoInstance = errors.New("node has no known ECS instance")
)
