package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// This file holds the fault-injection hook and the rate limiter, both of
// which apply to /api/v2 requests only.

// Phase tells a FaultFunc at which point of a request it is consulted.
type Phase int

const (
	// BeforeApply: the request has been received and nothing has been
	// changed or checked yet (not even authentication or the rate limit).
	BeforeApply Phase = iota
	// AfterApply: a state-changing request (POST rotate-secret, PATCH
	// client) has been applied and committed; the response is not written
	// yet.
	AfterApply
)

// String returns "BeforeApply" or "AfterApply".
func (p Phase) String() string {
	switch p {
	case BeforeApply:
		return "BeforeApply"
	case AfterApply:
		return "AfterApply"
	}
	return "Phase(" + strconv.Itoa(int(p)) + ")"
}

// FaultFunc is consulted for every /api/v2 request: once with BeforeApply
// and, for requests that change state (POST rotate-secret, PATCH client) and
// succeed, again with AfterApply. clientID is the {id} path segment of
// /api/v2/clients/{id}[/...] requests, "" otherwise. A successful
// POST /oauth/token consults it too, with AfterApply and the authenticated
// client's ID, before the token is written. Returning nil means "behave
// normally". It may be called from many goroutines at once.
type FaultFunc func(p Phase, r *http.Request, clientID string) *Fault

// Fault describes what to do instead of (or before) behaving normally. The
// fields act in this order: Do, Delay, Drop, Status.
type Fault struct {
	// Status > 0: answer with this status and an Auth0-style JSON error body.
	Status int
	// Message is the message of that body; default: Auth0's message for 429,
	// the HTTP reason phrase otherwise.
	Message string
	// RetryAfter, with Status 429: the Retry-After seconds; the
	// X-RateLimit-* headers are sent too.
	RetryAfter int
	// Drop: hijack the connection and close it without any response. Where
	// the connection cannot be hijacked (HTTP/2, or a ResponseWriter without
	// http.Hijacker such as httptest.ResponseRecorder) the handler panics
	// with http.ErrAbortHandler instead, which net/http turns into a reset.
	Drop bool
	// Delay: sleep this long (or until the request context is done), then
	// go on with the other fields, or normal behaviour if there are none.
	Delay time.Duration
	// Do is called synchronously when the fault fires.
	Do func()
}

// SetFaults installs f as the fault hook; nil removes it.
func (s *Server) SetFaults(f FaultFunc) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetRateLimit changes the /api/v2 rate limit (requests per second, 0 =
// unlimited). It takes effect immediately.
func (s *Server) SetRateLimit(perSecond int) {
	s.mu.Lock()
	s.limiter.limit = perSecond
	s.mu.Unlock()
}

// runFault consults the fault hook and carries out the fault it returns.
// It reports whether the response has been dealt with (an error written or
// the connection dropped), in which case the caller must stop.
func (s *Server) runFault(p Phase, w http.ResponseWriter, r *http.Request, clientID string) bool {
	s.mu.Lock()
	hook := s.faults
	s.mu.Unlock()
	if hook == nil {
		return false
	}
	f := hook(p, r, clientID)
	if f == nil {
		return false
	}
	if f.Do != nil {
		f.Do()
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	if f.Drop {
		dropConnection(w)
		return true
	}
	if f.Status > 0 {
		if f.Status == http.StatusTooManyRequests {
			s.mu.Lock()
			s.stats.RateLimited++
			limit := s.limiter.limit
			s.mu.Unlock()
			retry := f.RetryAfter
			if retry <= 0 {
				retry = 1
			}
			if limit <= 0 {
				limit = 1
			}
			h := w.Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
			h.Set("X-RateLimit-Remaining", "0")
			h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+int64(retry), 10))
			h.Set("Retry-After", strconv.Itoa(retry))
			msg := f.Message
			if msg == "" {
				msg = globalLimitMessage
			}
			writeAPIError(w, http.StatusTooManyRequests, msg, "too_many_requests")
			return true
		}
		writeAPIError(w, f.Status, f.Message, "")
		return true
	}
	return false
}

// dropConnection closes the client connection without writing a response.
// If the connection cannot be hijacked (HTTP/2, or a ResponseWriter that
// does not support it) the handler is aborted with http.ErrAbortHandler,
// which makes net/http reset the stream or close the connection.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

const globalLimitMessage = "Global limit has been reached"

// rateLimiter counts requests in fixed one-second windows. Guarded by
// Server.mu.
type rateLimiter struct {
	limit  int
	window int64 // unix second of the current window
	count  int
}

// rateLimit applies the limiter to an /api/v2 request. When a limit is set
// it adds the X-RateLimit-* headers; over the limit it writes Auth0's 429
// (with Retry-After) and returns false.
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	now := time.Now()
	sec := now.Unix()
	s.mu.Lock()
	l := &s.limiter
	if l.limit <= 0 {
		s.mu.Unlock()
		return true
	}
	if l.window != sec {
		l.window, l.count = sec, 0
	}
	allowed := l.count < l.limit
	if allowed {
		l.count++
	} else {
		s.stats.RateLimited++
	}
	limit, remaining := l.limit, l.limit-l.count
	s.mu.Unlock()

	reset := sec + 1
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	if allowed {
		return true
	}
	// Whole seconds until the window ends, rounded up: always 1 with
	// one-second windows.
	retry := int((time.Unix(reset, 0).Sub(now) + time.Second - 1) / time.Second)
	if retry < 1 {
		retry = 1
	}
	h.Set("Retry-After", strconv.Itoa(retry))
	writeAPIError(w, http.StatusTooManyRequests, globalLimitMessage, "too_many_requests")
	return false
}
