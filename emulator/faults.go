package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// This file holds the fault-injection hook, consulted for /api/v2 and
// /oauth/token requests.

// Phase tells a FaultFunc at which point of a request it is consulted.
type Phase int

const (
	// BeforeApply: the request has been received and nothing has been
	// changed or checked yet (not even authentication or the rate limit).
	BeforeApply Phase = iota
	// AfterApply: a state-changing request (POST rotate-secret, PATCH
	// client, POST, PATCH or DELETE of a client credential) has been applied
	// and committed, or a POST /oauth/token has authenticated its client
	// and is about to issue a token; the response is not written yet.
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

// FaultFunc is consulted for every request to /api/v2 and /oauth/token:
//
//   - /api/v2: once with BeforeApply and, for requests that change state
//     (POST rotate-secret, PATCH client, POST/PATCH/DELETE of credentials)
//     and succeed, again with AfterApply. clientID is the {id} path segment
//     of /api/v2/clients/{id}[/...] requests, "" otherwise.
//   - /oauth/token: once with BeforeApply (before the rate limit, method and
//     client authentication are checked) and, when the client has
//     authenticated and is granted the token, again with AfterApply just
//     before the token is written. clientID is the client_id as presented
//     (body field, HTTP Basic user, or the sub of a client assertion), not
//     yet authenticated, at BeforeApply, and the authenticated client at
//     AfterApply.
//
// Note that a hook that answers every BeforeApply POST also answers token
// requests; match r.URL.Path to aim at one endpoint. Returning nil means
// "behave normally". It may be called from many goroutines at once.
type FaultFunc func(p Phase, r *http.Request, clientID string) *Fault

// Fault describes what to do instead of (or before) behaving normally. The
// fields act in this order: Do, Delay, Drop, Status.
type Fault struct {
	// Status > 0: answer with this status and an Auth0-style JSON error
	// body: at /api/v2 the Management API shape
	// {"statusCode","error","message"[,"errorCode"]}, at /oauth/token the
	// OAuth shape {"error","error_description"}.
	Status int
	// Message is the message (error_description at /oauth/token) of that
	// body. Default: Auth0's "Global limit has been reached" for 429 (and
	// for 500 at /oauth/token, which is what Auth0 answers when a global
	// limit trips there), the HTTP reason phrase otherwise.
	Message string
	// Error is the OAuth "error" code of a fault at /oauth/token. Default by
	// status: 400 "invalid_request", 401, 403 and 500 "access_denied", 429
	// "too_many_requests", other 5xx "server_error", other 4xx
	// "invalid_request". Ignored at /api/v2.
	Error string
	// RetryAfter, with Status 429: send Retry-After with these seconds and
	// x-ratelimit-reset that far ahead. Without it the 429 carries only the
	// x-ratelimit-* headers, reset being the current second, as Auth0's
	// burst-limit 429s do.
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

// endpoint tells runFault which API a request belongs to, for the error
// body shape and the rate-limit bucket.
type endpoint int

const (
	endpointManagement endpoint = iota
	endpointToken
)

// runFault consults the fault hook and carries out the fault it returns.
// It reports whether the response has been dealt with (an error written or
// the connection dropped), in which case the caller must stop.
func (s *Server) runFault(p Phase, w http.ResponseWriter, r *http.Request, clientID string, ep endpoint) bool {
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
	if f.Status <= 0 {
		return false
	}
	b := &s.apiBucket
	if ep == endpointToken {
		b = &s.tokenBucket
	}
	if f.Status == http.StatusTooManyRequests {
		now := s.now()
		s.mu.Lock()
		s.stats.RateLimited++
		limit := b.burst
		s.mu.Unlock()
		if limit <= 0 {
			limit = 1
		}
		st := rateState{limit: limit, remaining: 0, reset: now.Unix()}
		if f.RetryAfter > 0 {
			st.reset = now.Unix() + int64(f.RetryAfter)
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		setRateHeaders(w, st)
	} else if p == BeforeApply {
		// AfterApply responses already carry the headers of the request's
		// own take.
		s.peekHeaders(w, b)
	}
	if ep == endpointToken {
		code, msg := f.Error, f.Message
		if code == "" {
			code = oauthErrorCode(f.Status)
		}
		if msg == "" {
			switch f.Status {
			case http.StatusTooManyRequests, http.StatusInternalServerError:
				msg = globalLimitMessage
			default:
				msg = http.StatusText(f.Status)
			}
		}
		writeOAuthError(w, f.Status, code, msg)
		return true
	}
	if f.Status == http.StatusTooManyRequests {
		msg := f.Message
		if msg == "" {
			msg = globalLimitMessage
		}
		writeAPIError(w, f.Status, msg, "too_many_requests")
		return true
	}
	writeAPIError(w, f.Status, f.Message, "")
	return true
}

// oauthErrorCode is the default OAuth error code of a fault status at
// /oauth/token.
func oauthErrorCode(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusInternalServerError:
		return "access_denied"
	case status == http.StatusTooManyRequests:
		return "too_many_requests"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request"
	}
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
