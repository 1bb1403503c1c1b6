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

// errorCoder is implemented by cloud errors that carry the provider's error
// code (pkg/cloud's APIError).
type errorCoder interface {
	ErrorCode() string
}

// ErrorCode returns the cloud's error code carried by err (e.g.
// QuotaExceeded.Route), or "" when it carries none.
func ErrorCode(err error) string {
	var ec errorCoder
	if errors.As(err, &ec) {
		return ec.ErrorCode()
	}
	return ""
}

// ErrorClass names the class of err for metric labels: throttled, busy,
// quota, conflict, not_found, invalid, unauthorized, not_available, fenced or
// other.
func ErrorClass(err error) string {
	for _, c := range []struct {
		err   error
		class string
	}{
		{ErrThrottled, "throttled"},
		{ErrBusy, "busy"},
		{ErrQuotaExceeded, "quota"},
		{ErrConflict, "conflict"},
		{ErrNotFound, "not_found"},
		{ErrInvalid, "invalid"},
		{ErrUnauthorized, "unauthorized"},
		{ErrNotAvailable, "not_available"},
		{ErrFenced, "fenced"},
	} {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "other"
}
