package emulator_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// stepClock is a clock that only moves when told to.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func newStepClock() *stepClock { return &stepClock{t: time.Unix(1_800_000_000, 0)} }

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rateHeaders returns the x-ratelimit-* headers of resp as limit/remaining/reset,
// reset relative to base (the clock's start) for readability.
func rateHeaders(resp *http.Response, base time.Time) (limit, remaining string, reset int64, ok bool) {
	limit = resp.Header.Get("X-RateLimit-Limit")
	remaining = resp.Header.Get("X-RateLimit-Remaining")
	raw := resp.Header.Get("X-RateLimit-Reset")
	if limit == "" || remaining == "" || raw == "" {
		return "", "", 0, false
	}
	r, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	return limit, remaining, r - base.Unix(), true
}

const tooManyRequests = `{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`

// TestRateLimitBucket walks the /api/v2 token bucket of RateLimit 2 (burst 2,
// 2/s) through a frozen clock.
func TestRateLimitBucket(t *testing.T) {
	clk := newStepClock()
	base := clk.Now()
	f := newFixture(t, emulator.Options{RateLimit: 2, Now: clk.Now})
	tok := f.token(adminID, adminSecret)
	path := "/api/v2/clients/" + targetID + "?fields=client_id"

	steps := []struct {
		name          string
		advance       time.Duration
		path, token   string
		wantStatus    int
		wantRemaining string
		wantReset     int64 // seconds after base
	}{
		// Allowed: reset is when the bucket is full again, rounded up.
		{"first of the burst", 0, path, tok, 200, "1", 1},
		{"second of the burst", 0, path, tok, 200, "0", 1},
		// Refused: reset is the second the next token arrives (base+0.5s),
		// rounded down: the current second.
		{"over the burst", 0, path, tok, 429, "0", 0},
		{"unauthenticated requests are limited too", 0, path, "", 429, "0", 0},
		{"not yet refilled", 400 * time.Millisecond, path, tok, 429, "0", 0},
		{"one token refilled", 100 * time.Millisecond, path, tok, 200, "0", 2},
		{"next token due in the next second", 0, path, tok, 429, "0", 1},
		// Errors other than 429 carry the headers too.
		{"404 carries the headers", 2 * time.Second, "/api/v2/users", tok, 404, "1", 3},
		{"401 carries the headers", 0, path, "", 401, "0", 4},
		{"refill stops at the burst", time.Hour, path, tok, 200, "1", 3603},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		resp, body := f.api(http.MethodGet, st.path, st.token, nil, "")
		if resp.StatusCode != st.wantStatus {
			t.Fatalf("%s: got %d %s, want %d", st.name, resp.StatusCode, body, st.wantStatus)
		}
		if st.wantStatus == 429 && body != tooManyRequests {
			t.Fatalf("%s: body %s", st.name, body)
		}
		limit, remaining, reset, ok := rateHeaders(resp, base)
		if !ok || limit != "2" || remaining != st.wantRemaining || reset != st.wantReset {
			t.Fatalf("%s: x-ratelimit limit=%q remaining=%q reset=base+%d (ok %v), want 2/%s/base+%d",
				st.name, limit, remaining, reset, ok, st.wantRemaining, st.wantReset)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			t.Fatalf("%s: Retry-After %q, Auth0 sends none", st.name, ra)
		}
	}

	// The token endpoint is not limited by the /api/v2 bucket and carries no
	// rate-limit headers without TokenRateLimit.
	resp, body := f.api(http.MethodPost, "/oauth/token", "", nil, "")
	if resp.StatusCode == 429 || resp.Header.Get("X-RateLimit-Limit") != "" {
		t.Fatalf("token endpoint: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	f.srv.SetRateLimit(0)
	for i := 0; i < 5; i++ {
		resp, body = f.api(http.MethodGet, path, tok, nil, "")
		expect(t, resp.StatusCode, body, 200, "")
		if resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("rate-limit headers without a limit: %v", resp.Header)
		}
	}
	if st := f.srv.Stats(); st.RateLimited != 4 || st.Requests != len(steps)+5 {
		t.Fatalf("stats = %+v", st)
	}

	// A new limit starts with a full bucket.
	f.srv.SetRateLimit(1)
	resp, body = f.api(http.MethodGet, path, tok, nil, "")
	expect(t, resp.StatusCode, body, 200, "")
	resp, body = f.api(http.MethodGet, path, tok, nil, "")
	expect(t, resp.StatusCode, body, 429, tooManyRequests)
	f.srv.SetRateLimitBucket(3, 0.5)
	for i, want := range []int{200, 200, 200, 429} {
		resp, body = f.api(http.MethodGet, path, tok, nil, "")
		if resp.StatusCode != want || resp.Header.Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("SetRateLimitBucket(3, 0.5) request %d: %d %v %s", i, resp.StatusCode, resp.Header, body)
		}
	}
	clk.Advance(1999 * time.Millisecond)
	resp, _ = f.api(http.MethodGet, path, tok, nil, "")
	if resp.StatusCode != 429 {
		t.Fatalf("0.5/s refilled a token in under 2s")
	}
	clk.Advance(time.Millisecond)
	resp, _ = f.api(http.MethodGet, path, tok, nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("0.5/s did not refill a token in 2s")
	}
}

// TestRateLimitOptions checks the burst and refill rate each way of
// configuring the /api/v2 bucket yields.
func TestRateLimitOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      emulator.Options
		wantBurst int
		refill    time.Duration // time for one token
	}{
		{"RateLimit", emulator.Options{RateLimit: 5}, 5, 200 * time.Millisecond},
		{"RateLimit with Burst", emulator.Options{RateLimit: 5, Burst: 1}, 1, 200 * time.Millisecond},
		{"RatePerSecond", emulator.Options{RatePerSecond: 0.5}, 1, 2 * time.Second},
		{"RatePerSecond with Burst", emulator.Options{RatePerSecond: 4, Burst: 7}, 7, 250 * time.Millisecond},
		{"RatePerSecond over RateLimit and Plan", emulator.Options{RatePerSecond: 4, RateLimit: 100, Plan: "enterprise"}, 4, 250 * time.Millisecond},
		{"RateLimit over Plan", emulator.Options{RateLimit: 3, Plan: "enterprise"}, 3, time.Second / 3},
		{"plan free", emulator.Options{Plan: "free"}, 2, 500 * time.Millisecond},
		{"plan essentials", emulator.Options{Plan: "essentials"}, 10, 400 * time.Millisecond},
		{"plan professional", emulator.Options{Plan: "Professional"}, 10, 400 * time.Millisecond},
		{"plan enterprise", emulator.Options{Plan: "enterprise"}, 50, time.Second / 16},
		{"plan with Burst", emulator.Options{Plan: "free", Burst: 5}, 5, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newStepClock()
			tc.opts.Now = clk.Now
			f := newFixture(t, tc.opts)
			tok := f.token(adminID, adminSecret)
			get := func() *http.Response {
				resp, _ := f.api(http.MethodGet, "/api/v2/clients/"+targetID+"?fields=name", tok, nil, "")
				return resp
			}
			for i := 0; i < tc.wantBurst; i++ {
				resp := get()
				if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != strconv.Itoa(tc.wantBurst) ||
					resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(tc.wantBurst-1-i) {
					t.Fatalf("request %d of the burst: %d %v", i, resp.StatusCode, resp.Header)
				}
			}
			if resp := get(); resp.StatusCode != 429 {
				t.Fatalf("request past the burst of %d: %d", tc.wantBurst, resp.StatusCode)
			}
			clk.Advance(tc.refill - time.Millisecond)
			if resp := get(); resp.StatusCode != 429 {
				t.Fatalf("a token came back before %v", tc.refill)
			}
			clk.Advance(2 * time.Millisecond)
			if resp := get(); resp.StatusCode != 200 {
				t.Fatalf("no token came back after %v", tc.refill)
			}
		})
	}
}

func TestPlanLimits(t *testing.T) {
	for _, tc := range []struct {
		plan  string
		burst int
		rate  float64
		ok    bool
	}{
		{"free", 2, 2, true},
		{"essentials", 10, 2.5, true},
		{"professional", 10, 2.5, true},
		{"ENTERPRISE", 50, 16, true},
		{"premium", 0, 0, false},
		{"", 0, 0, false},
	} {
		burst, rate, ok := emulator.PlanLimits(tc.plan)
		if burst != tc.burst || rate != tc.rate || ok != tc.ok {
			t.Errorf("PlanLimits(%q) = %d, %v, %v", tc.plan, burst, rate, ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted an unknown plan")
		}
	}()
	emulator.New(emulator.Options{Plan: "premium"})
}

// TestRateLimitHeadersOnWire checks the header names as sent: lower-case, as
// Auth0 sends them, on every /api/v2 answer, faults included.
func TestRateLimitHeadersOnWire(t *testing.T) {
	clk := newStepClock()
	srv := emulator.New(emulator.Options{RateLimit: 2, Now: clk.Now})
	srv.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if r.URL.Query().Get("fault") != "" {
			return &emulator.Fault{Status: 503}
		}
		return nil
	})
	for _, tc := range []struct {
		name, target, wantRemaining string
		wantStatus                  int
	}{
		{"401", "/api/v2/clients/x", "1", 401},
		{"BeforeApply fault peeks without taking", "/api/v2/clients/x?fault=1", "1", 503},
		{"404", "/api/v2/nothing", "0", 404},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
		h := rec.Result().Header
		if rec.Code != tc.wantStatus {
			t.Fatalf("%s: status %d", tc.name, rec.Code)
		}
		if len(h["x-ratelimit-limit"]) != 1 || len(h["x-ratelimit-remaining"]) != 1 || len(h["x-ratelimit-reset"]) != 1 {
			t.Fatalf("%s: headers %v, want lower-case x-ratelimit-*", tc.name, h)
		}
		if got := h["x-ratelimit-remaining"][0]; got != tc.wantRemaining {
			t.Fatalf("%s: remaining %s, want %s", tc.name, got, tc.wantRemaining)
		}
	}
}
