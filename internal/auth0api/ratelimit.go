package auth0api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// DefaultRateLimit is what the smallest Auth0 plans allow the Management API.
const DefaultRateLimit = 2.0

// MaxRateLimitPause bounds how long one 429 can pause the mount, whatever Auth0's headers say.
const MaxRateLimitPause = 5 * time.Minute

// MinRateLimitPause is the least a 429 pauses the mount, whatever Auth0's headers say.
const MinRateLimitPause = time.Second

// RateLimiter paces every Management API call of a mount, manual and scheduled alike, and
// after a 429 holds all calls until Auth0 says its window resets. It outlives client
// rebuilds, so a config change cannot reset the pace.
type RateLimiter struct {
	limiter *rate.Limiter
	clock   clock.Clock

	mu           sync.Mutex
	blockedUntil time.Time

	// lastSuccess is when Auth0 last answered the mount's client without an error (unix
	// nanoseconds; 0: never since the mount started), for auth0/status.
	lastSuccess atomic.Int64

	// observer, if set (SetObserver), is told of every request and every pause.
	observer atomic.Pointer[Observer]
}

// Observer is told what the mount's requests to Auth0 do: each request's endpoint (its
// method and path template, as EndpointOf names it), the HTTP status of its answer (0
// when none came) and its latency; each wait after a 429; each answer without an error.
type Observer interface {
	ObserveRequest(endpoint string, status int, d time.Duration)
	ObservePause(d time.Duration)
	ObserveSuccess(at time.Time)
}

// SetObserver has o told of the requests of every client built with this limiter, and of
// its pauses.
func (l *RateLimiter) SetObserver(o Observer) { l.observer.Store(&o) }

// observe is the limiter's observer, nil if none.
func (l *RateLimiter) observe() Observer {
	if o := l.observer.Load(); o != nil {
		return *o
	}
	return nil
}

func NewRateLimiter(perSecond float64, clk clock.Clock) *RateLimiter {
	return &RateLimiter{limiter: rate.NewLimiter(rate.Limit(perSecond), 1), clock: clk}
}

func (l *RateLimiter) SetRate(perSecond float64) {
	l.limiter.SetLimit(rate.Limit(perSecond))
}

// Wait blocks until a call may be made, or ctx ends.
func (l *RateLimiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	pause := l.blockedUntil.Sub(l.clock.Now())
	l.mu.Unlock()
	if o := l.observe(); o != nil && pause > 0 {
		o.ObservePause(pause)
	}
	if err := clock.Sleep(ctx, l.clock, pause); err != nil {
		return err
	}
	now := l.clock.Now()
	r := l.limiter.ReserveN(now, 1)
	if err := clock.Sleep(ctx, l.clock, r.DelayFrom(now)); err != nil {
		r.CancelAt(l.clock.Now())
		return err
	}
	return nil
}

// PausedUntil is when the mount may call Auth0 again after a 429; in the past when it may
// now.
func (l *RateLimiter) PausedUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blockedUntil
}

// Observe reads a 429's Retry-After (seconds or HTTP date) or, failing that,
// X-RateLimit-Reset (unix seconds), and holds further calls until then.
func (l *RateLimiter) Observe(resp *http.Response, now time.Time) {
	if resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	until := now.Add(MinRateLimitPause)
	if v := resp.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			until = now.Add(time.Duration(secs) * time.Second)
		} else if at, err := http.ParseTime(v); err == nil {
			until = at
		}
	} else if v := resp.Header.Get("X-RateLimit-Reset"); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			until = time.Unix(secs, 0)
		}
	}
	if floor := now.Add(MinRateLimitPause); until.Before(floor) {
		// A reset of "now" (as Auth0 sends for a burst limit) still means: not yet.
		until = floor
	}
	if limit := now.Add(MaxRateLimitPause); until.After(limit) {
		until = limit
	}
	l.mu.Lock()
	if until.After(l.blockedUntil) {
		l.blockedUntil = until
	}
	l.mu.Unlock()
}

// ObservingTransport sits under the Management API client: it feeds Auth0's 429s to the
// mount's RateLimiter, records when a request actually leaves the process, and, for a
// request whose context asks for it (Management.Observe), what the answer said of the
// tenant. Waiting for
// the limiter happens before the request is built (managementClient.call), so that the wait
// does not count against the HTTP timeout.
type ObservingTransport struct {
	Base    http.RoundTripper
	Limiter *RateLimiter
	Clock   clock.Clock
}

func (t *ObservingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	api := strings.HasPrefix(req.URL.Path, "/api/v2/")
	if st, ok := req.Context().Value(sendTrackerKey{}).(*SendTracker); ok && api {
		st.sent.Store(true)
	}
	start := time.Now() // latency, on the wall clock
	sent := t.Clock.Now()
	resp, err := t.Base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		t.Limiter.Observe(resp, t.Clock.Now())
		if resp.StatusCode < 400 {
			now := t.Clock.Now()
			t.Limiter.lastSuccess.Store(now.UnixNano())
			if o := t.Limiter.observe(); o != nil {
				o.ObserveSuccess(now)
			}
		}
		if rec, ok := req.Context().Value(answerRecorderKey{}).(*answerRecorder); ok && api {
			rec.record(resp, sent, t.Clock.Now())
		}
	}
	if o := t.Limiter.observe(); o != nil {
		o.ObserveRequest(EndpointOf(req), status, time.Since(start))
	}
	return resp, err
}

// EndpointOf names req's endpoint for metrics: its method and path, with the identifiers
// in the path replaced by {id} (POST /api/v2/clients/{id}/rotate-secret), so that the
// names are few whatever the tenant holds.
func EndpointOf(req *http.Request) string {
	p := strings.Trim(req.URL.Path, "/")
	if rest, ok := strings.CutPrefix(p, "api/v2/"); ok {
		segs := strings.Split(rest, "/")
		for i := 1; i < len(segs); i += 2 {
			segs[i] = "{id}"
		}
		p = "api/v2/" + strings.Join(segs, "/")
	}
	return req.Method + " /" + p
}

// observedTransport reports each request of a client that is not the Management API's
// (the token endpoint's, for roles) to an Observer.
type observedTransport struct {
	base     http.RoundTripper
	observer Observer
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	t.observer.ObserveRequest(EndpointOf(req), status, time.Since(start))
	return resp, err
}

// SendTracker records whether a Management API request left the process, so that a failure
// before that point (no token, rate limit wait cut short) is known to have changed nothing.
type SendTracker struct{ sent atomic.Bool }

// Sent reports whether a Management API request left the process.
func (st *SendTracker) Sent() bool { return st.sent.Load() }

type sendTrackerKey struct{}

func WithSendTracker(ctx context.Context, st *SendTracker) context.Context {
	return context.WithValue(ctx, sendTrackerKey{}, st)
}

// LastSuccess is when Auth0 last answered the mount's client without an error; zero if
// never since the mount started.
func (l *RateLimiter) LastSuccess() time.Time {
	if ns := l.lastSuccess.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
