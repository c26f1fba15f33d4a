package emulator

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file holds the rate limiters: one token bucket for the whole tenant's
// /api/v2 traffic and one for /oauth/token, both guarded by Server.mu.
//
// Auth0 limits with token buckets (its limitd): a bucket holds up to a burst
// of request tokens, refilled at a steady rate; each request takes one, and a
// request that finds less than one token is answered 429. Every response of a
// limited endpoint carries the bucket's state:
//
//	x-ratelimit-limit:     the bucket size (the burst)
//	x-ratelimit-remaining: whole tokens left after this request
//	x-ratelimit-reset:     unix second at which the bucket is full again
//	                       (rounded up, as limitd computes it)
//
// On a 429 the emulator takes the harsher reading of what Auth0 is seen to
// send for a burst limit: x-ratelimit-reset is the unix second in which the
// next token arrives, rounded down (so often the current second), and there
// is no Retry-After. A client that sleeps until x-ratelimit-reset and no
// longer is refused again.

// Plan presets of the /api/v2 bucket, after Auth0's published Management API
// limits for self-service and enterprise tenants.
var plans = map[string]struct {
	burst     int
	perSecond float64
}{
	"free":         {2, 2},
	"essentials":   {10, 150.0 / 60},
	"professional": {10, 150.0 / 60},
	"enterprise":   {50, 16},
}

// PlanLimits returns the /api/v2 token bucket of a plan preset (see
// Options.Plan): "free" (burst 2, 2/s), "essentials" and "professional"
// (burst 10, 150 per minute = 2.5/s), "enterprise" (burst 50, 16/s). The
// name is case-insensitive; ok is false for an unknown name.
func PlanLimits(plan string) (burst int, perSecond float64, ok bool) {
	p, ok := plans[strings.ToLower(strings.TrimSpace(plan))]
	return p.burst, p.perSecond, ok
}

// bucket is a token bucket. The zero value (or a non-positive rate or burst)
// is unlimited.
type bucket struct {
	burst  int
	rate   float64 // tokens per second
	tokens float64
	last   time.Time // when tokens was last brought up to date; zero: full
}

// set configures the bucket and fills it.
func (b *bucket) set(burst int, perSecond float64) {
	*b = bucket{burst: burst, rate: perSecond}
}

func (b *bucket) limited() bool { return b.burst > 0 && b.rate > 0 }

// refill brings tokens up to date at now.
func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.tokens, b.last = float64(b.burst), now
		return
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(float64(b.burst), b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
}

// rateState is what the x-ratelimit-* headers report.
type rateState struct {
	limit     int
	remaining int
	reset     int64 // unix seconds
}

// take takes one token if there is one. It returns whether the request is
// allowed and the state to report.
func (b *bucket) take(now time.Time) (bool, rateState) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, b.state(now)
	}
	// The second in which the next token arrives, rounded down.
	next := now.Add(secondsToDuration((1 - b.tokens) / b.rate))
	return false, rateState{limit: b.burst, remaining: 0, reset: next.Unix()}
}

// peek reports the state without taking a token.
func (b *bucket) peek(now time.Time) rateState {
	b.refill(now)
	return b.state(now)
}

// state reports the bucket at now: reset is when it is full again, rounded up
// to a whole unix second.
func (b *bucket) state(now time.Time) rateState {
	full := now.Add(secondsToDuration((float64(b.burst) - b.tokens) / b.rate))
	reset := full.Unix()
	if full.After(time.Unix(reset, 0)) {
		reset++
	}
	return rateState{limit: b.burst, remaining: int(math.Floor(b.tokens)), reset: reset}
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// burstFor is the burst that goes with a rate when none is given: the rate
// rounded up, at least 1.
func burstFor(perSecond float64) int {
	return max(1, int(math.Ceil(perSecond)))
}

// Rate-limit header names, lower-case as Auth0 sends them (HTTP/2, and its
// HTTP/1.1 front ends). Go clients canonicalize header names when reading a
// response, so Header.Get("X-RateLimit-Reset") finds them.
const (
	hdrLimit     = "x-ratelimit-limit"
	hdrRemaining = "x-ratelimit-remaining"
	hdrReset     = "x-ratelimit-reset"
)

// setRateHeaders writes the x-ratelimit-* headers of st.
func setRateHeaders(w http.ResponseWriter, st rateState) {
	h := w.Header()
	for _, k := range []string{hdrLimit, hdrRemaining, hdrReset} {
		h.Del(k) // the canonical form, if someone set it
	}
	h[hdrLimit] = []string{strconv.Itoa(st.limit)}
	h[hdrRemaining] = []string{strconv.Itoa(st.remaining)}
	h[hdrReset] = []string{strconv.FormatInt(st.reset, 10)}
}

// limitRequest applies b to a request: when b is limited it writes the
// x-ratelimit-* headers and, if no token is left, counts a 429 and returns
// false; the caller then writes the 429 body.
func (s *Server) limitRequest(w http.ResponseWriter, b *bucket) bool {
	now := s.now()
	s.mu.Lock()
	if !b.limited() {
		s.mu.Unlock()
		return true
	}
	ok, st := b.take(now)
	if !ok {
		s.stats.RateLimited++
	}
	s.mu.Unlock()
	setRateHeaders(w, st)
	return ok
}

// peekHeaders writes the x-ratelimit-* headers of b, when it is limited,
// without taking a token (for responses that a BeforeApply fault answers).
func (s *Server) peekHeaders(w http.ResponseWriter, b *bucket) {
	now := s.now()
	s.mu.Lock()
	if !b.limited() {
		s.mu.Unlock()
		return
	}
	st := b.peek(now)
	s.mu.Unlock()
	setRateHeaders(w, st)
}

// rateLimit applies the tenant's /api/v2 bucket. Over the limit it writes
// Auth0's 429 and returns false.
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	if s.limitRequest(w, &s.apiBucket) {
		return true
	}
	writeAPIError(w, http.StatusTooManyRequests, globalLimitMessage, "too_many_requests")
	return false
}

// tokenRateLimit applies the /oauth/token bucket. Over the limit it writes
// Auth0's OAuth-shaped 429 and returns false.
func (s *Server) tokenRateLimit(w http.ResponseWriter) bool {
	if s.limitRequest(w, &s.tokenBucket) {
		return true
	}
	writeOAuthError(w, http.StatusTooManyRequests, "too_many_requests", globalLimitMessage)
	return false
}

// SetRateLimit changes the /api/v2 limit to perSecond requests per second
// with a burst of perSecond (0 = unlimited). The bucket starts full. It
// takes effect immediately.
func (s *Server) SetRateLimit(perSecond int) {
	s.SetRateLimitBucket(perSecond, float64(perSecond))
}

// SetRateLimitBucket changes the /api/v2 limit to a token bucket of burst
// tokens refilled at perSecond (either <= 0 = unlimited). The bucket starts
// full. It takes effect immediately.
func (s *Server) SetRateLimitBucket(burst int, perSecond float64) {
	s.mu.Lock()
	s.apiBucket.set(burst, perSecond)
	s.mu.Unlock()
}

// SetTokenRateLimit changes the /oauth/token limit to perSecond requests per
// second, with a burst of perSecond rounded up (0 = unlimited). The bucket
// starts full. It takes effect immediately.
func (s *Server) SetTokenRateLimit(perSecond float64) {
	s.mu.Lock()
	if perSecond > 0 {
		s.tokenBucket.set(burstFor(perSecond), perSecond)
	} else {
		s.tokenBucket.set(0, 0)
	}
	s.mu.Unlock()
}

// apiLimits resolves the /api/v2 bucket of opts: RatePerSecond, else
// RateLimit, else Plan; Burst, when > 0, overrides the burst of any of them.
func apiLimits(opts Options) (burst int, perSecond float64) {
	switch {
	case opts.RatePerSecond > 0:
		burst, perSecond = burstFor(opts.RatePerSecond), opts.RatePerSecond
	case opts.RateLimit > 0:
		burst, perSecond = opts.RateLimit, float64(opts.RateLimit)
	case opts.Plan != "":
		var ok bool
		burst, perSecond, ok = PlanLimits(opts.Plan)
		if !ok {
			panic("emulator: unknown Options.Plan " + strconv.Quote(opts.Plan) + ` (want "free", "essentials", "professional" or "enterprise")`)
		}
	default:
		return 0, 0
	}
	if opts.Burst > 0 {
		burst = opts.Burst
	}
	return burst, perSecond
}
