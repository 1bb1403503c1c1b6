package cloud

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// backoff is an exponential backoff with full jitter.
type backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
}

// delay returns the wait before retry number attempt (0-based): a random
// duration in [d/2, d] where d = Initial·Factor^attempt, capped at Max.
func (b backoff) delay(attempt int) time.Duration {
	d := float64(b.Initial)
	for range attempt {
		d *= b.Factor
		if d >= float64(b.Max) {
			d = float64(b.Max)
			break
		}
	}
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}

// invoker runs SDK calls: it waits on the rate limiter, bounds every attempt
// by the call timeout and the caller's context, classifies errors, records
// metrics and retries throttled, busy and network failures with backoff
// until retryFor has elapsed or the context ends.
type invoker struct {
	limiter     *adaptiveLimiter
	metrics     *metrics
	callTimeout time.Duration
	retryFor    time.Duration
	backoff     backoff
	now         func() time.Time
	// observe, when set, sees every failed call (Permissions.observe).
	observe func(ctx context.Context, action string, err error)
}

// writeActions are the calls that change the cloud. They are fenced: one
// starts only while the leader lease is surely held, and is bounded so that
// it cannot complete after the lease may have passed to another replica.
var writeActions = map[string]bool{
	"CreateRouteEntries": true, "CreateRouteEntry": true,
	"DeleteRouteEntries": true, "DeleteRouteEntry": true,
	"ModifyRouteEntry": true,
	// The ENI source/destination check: the only ECS write.
	"ModifyNetworkInterfaceAttribute": true,
}

// minWriteWindow is the least time a write must have before the fence's
// deadline to be started at all; less would only time out.
const minWriteWindow = 200 * time.Millisecond

// call runs one SDK call with rate limiting, deadline and retries. build
// makes the request anew for every attempt: the SDK signs a request by
// writing into its maps, and an attempt abandoned on timeout may still be
// signing or sending its request while the next one starts. The returned
// error is an *APIError.
func call[R requests.AcsRequest, T any](ctx context.Context, inv *invoker, action string, build func() R, send func(R) (T, error)) (T, error) {
	logger := klog.FromContext(ctx)
	start := inv.now()
	var zero T
	for attempt := 0; ; attempt++ {
		resp, err := callOnce(ctx, inv, action, build, send)
		if err == nil {
			return resp, nil
		}
		if !err.Retryable() || ctx.Err() != nil {
			return zero, err
		}
		wait := inv.backoff.delay(attempt)
		if inv.now().Add(wait).Sub(start) > inv.retryFor {
			return zero, err
		}
		if deadline, ok := ctx.Deadline(); ok && inv.now().Add(wait).After(deadline) {
			return zero, err
		}
		logger.V(2).Info("Retrying cloud API call", "action", action, "code", err.Code, "requestID", err.RequestID, "attempt", attempt+1, "wait", wait)
		inv.metrics.retries.WithLabelValues(action).Inc()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return zero, err
		case <-timer.C:
		}
	}
}

type callResult[T any] struct {
	resp T
	err  error
}

// attemptTimeout is how long one attempt of action may take: the call
// timeout, cut for a write to what is left before the fence's deadline
// (route.WriteDeadline). It fails with route.ErrFenced when a write must
// not start.
func (inv *invoker) attemptTimeout(ctx context.Context, action string) (time.Duration, *APIError) {
	timeout := inv.callTimeout
	if !writeActions[action] {
		return timeout, nil
	}
	deadline, err := route.WriteDeadline(ctx)
	if err == nil && !deadline.IsZero() {
		left := deadline.Sub(inv.now())
		if left < minWriteWindow {
			err = fmt.Errorf("%w: %v left before the lease may pass to another replica", route.ErrFenced, left.Round(time.Millisecond))
		}
		timeout = min(timeout, left)
	}
	if err != nil {
		return 0, &APIError{Action: action, Code: codeFenced, Detail: err.Error(), class: route.ErrFenced}
	}
	return timeout, nil
}

// callOnce makes one rate-limited call. The SDK takes no context, so the call
// runs in its own goroutine and the caller stops waiting when the context or
// the attempt's timeout ends. The request carries that timeout as the SDK's
// read and connect timeouts, so the HTTP exchange of an abandoned attempt
// ends by then too: a fenced write cannot land after its deadline.
func callOnce[R requests.AcsRequest, T any](ctx context.Context, inv *invoker, action string, build func() R, send func(R) (T, error)) (T, *APIError) {
	var zero T
	if err := inv.limiter.Wait(ctx); err != nil {
		return zero, &APIError{Action: action, Code: codeTimeout, Detail: "waiting for the client-side rate limit: " + err.Error(), class: ErrNetwork}
	}
	timeout, fenced := inv.attemptTimeout(ctx, action)
	if fenced != nil {
		return zero, fenced
	}
	req := build()
	req.SetReadTimeout(timeout)
	req.SetConnectTimeout(timeout)
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan callResult[T], 1)
	start := inv.now()
	go func() {
		resp, err := send(req)
		done <- callResult[T]{resp: resp, err: err}
	}()
	var res callResult[T]
	select {
	case res = <-done:
	case <-callCtx.Done():
		res.err = callCtx.Err()
	}
	inv.metrics.duration.WithLabelValues(action).Observe(inv.now().Sub(start).Seconds())
	if res.err == nil {
		inv.metrics.calls.WithLabelValues(action, codeSuccess).Inc()
		inv.limiter.Succeeded()
		return res.resp, nil
	}
	apiErr := classify(action, res.err)
	code := apiErr.Code
	if code == "" {
		code = fmt.Sprintf("HTTP%d", apiErr.HTTPStatus)
	}
	inv.metrics.calls.WithLabelValues(action, code).Inc()
	if inv.observe != nil {
		inv.observe(ctx, action, apiErr)
	}
	if errors.Is(apiErr, route.ErrThrottled) {
		inv.metrics.throttles.WithLabelValues(action).Inc()
		inv.limiter.Throttled()
	}
	return zero, apiErr
}
