package emulator_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

const tokenTooMany = `{"error":"too_many_requests","error_description":"Global limit has been reached"}`

func TestTokenRateLimit(t *testing.T) {
	clk := newStepClock()
	base := clk.Now()
	f := newFixture(t, emulator.Options{TokenRateLimit: 2, RateLimit: 100, Now: clk.Now})
	good := ccForm(adminID, adminSecret, f.aud)
	bad := ccForm(adminID, "wrong", f.aud)

	steps := []struct {
		name          string
		advance       time.Duration
		form          url.Values
		wantStatus    int
		wantBody      string
		wantRemaining string
	}{
		{"first", 0, good, 200, "", "1"},
		{"failed requests take tokens too", 0, bad, 401, `{"error":"access_denied","error_description":"Unauthorized"}`, "0"},
		{"over the limit", 0, good, 429, tokenTooMany, "0"},
		{"wrong secret also limited", 0, bad, 429, tokenTooMany, "0"},
		{"refilled", 500 * time.Millisecond, good, 200, "", "0"},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		resp, body := f.api(http.MethodPost, "/oauth/token", "", strings.NewReader(st.form.Encode()), "application/x-www-form-urlencoded")
		expect(t, resp.StatusCode, body, st.wantStatus, st.wantBody)
		limit, remaining, _, ok := rateHeaders(resp, base)
		if !ok || limit != "2" || remaining != st.wantRemaining {
			t.Fatalf("%s: x-ratelimit %q/%q (ok %v)", st.name, limit, remaining, ok)
		}
		if resp.Header.Get("Retry-After") != "" {
			t.Fatalf("%s: Retry-After sent", st.name)
		}
	}
	// /api/v2 has its own bucket.
	clk.Advance(time.Hour)
	tok := f.token(adminID, adminSecret)
	for i := 0; i < 5; i++ {
		resp, body := f.api(http.MethodGet, "/api/v2/clients/"+targetID, tok, nil, "")
		expect(t, resp.StatusCode, body, 200, "")
	}

	st := f.srv.Stats()
	if st.RateLimited != 2 || st.TokensIssued != 3 || st.TokenRequests[adminID] != 6 {
		t.Fatalf("stats = %+v", st)
	}

	f.srv.SetTokenRateLimit(0)
	for i := 0; i < 5; i++ {
		f.token(adminID, adminSecret)
	}
	f.srv.SetTokenRateLimit(0.5) // burst 1, a token every 2s
	f.token(adminID, adminSecret)
	status, body := f.postToken(good, nil)
	expect(t, status, body, 429, tokenTooMany)
}

// TestTokenFaults checks that faults at /oauth/token answer OAuth-shaped
// bodies, BeforeApply and AfterApply alike.
func TestTokenFaults(t *testing.T) {
	tests := []struct {
		name       string
		phase      emulator.Phase
		fault      emulator.Fault
		wantStatus int
		wantBody   string
		check      func(t *testing.T, h http.Header)
	}{
		{"500 is Auth0's global limit", emulator.BeforeApply, emulator.Fault{Status: 500}, 500,
			`{"error":"access_denied","error_description":"Global limit has been reached"}`, nil},
		{"429 without Retry-After", emulator.BeforeApply, emulator.Fault{Status: 429}, 429, tokenTooMany,
			func(t *testing.T, h http.Header) {
				now := time.Now().Unix()
				if h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Limit") != "1" {
					t.Fatalf("headers %v", h)
				}
				if r := h.Get("X-RateLimit-Reset"); r != strconv.FormatInt(now, 10) && r != strconv.FormatInt(now-1, 10) {
					t.Fatalf("reset %s, want the current second %d", r, now)
				}
			}},
		{"429 with Retry-After", emulator.BeforeApply, emulator.Fault{Status: 429, RetryAfter: 3}, 429, tokenTooMany,
			func(t *testing.T, h http.Header) {
				if h.Get("Retry-After") != "3" {
					t.Fatalf("headers %v", h)
				}
			}},
		{"401", emulator.BeforeApply, emulator.Fault{Status: 401}, 401, `{"error":"access_denied","error_description":"Unauthorized"}`, nil},
		{"503 with message", emulator.BeforeApply, emulator.Fault{Status: 503, Message: "down"}, 503, `{"error":"server_error","error_description":"down"}`, nil},
		{"400", emulator.BeforeApply, emulator.Fault{Status: 400}, 400, `{"error":"invalid_request","error_description":"Bad Request"}`, nil},
		{"custom error code", emulator.BeforeApply, emulator.Fault{Status: 403, Error: "unauthorized_client", Message: "nope"}, 403,
			`{"error":"unauthorized_client","error_description":"nope"}`, nil},
		{"after authentication", emulator.AfterApply, emulator.Fault{Status: 500}, 500,
			`{"error":"access_denied","error_description":"Global limit has been reached"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, emulator.Options{})
			f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
				if p == tc.phase && r.URL.Path == "/oauth/token" {
					fault := tc.fault
					return &fault
				}
				return nil
			})
			resp, body := f.api(http.MethodPost, "/oauth/token", "",
				strings.NewReader(ccForm(adminID, adminSecret, f.aud).Encode()), "application/x-www-form-urlencoded")
			expect(t, resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			if tc.check != nil {
				tc.check(t, resp.Header)
			}
			st := f.srv.Stats()
			if st.TokensIssued != 0 || st.TokenRequests[adminID] != 1 {
				t.Fatalf("stats = %+v", st)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantStatus == 429]; st.RateLimited != want {
				t.Fatalf("RateLimited = %d, want %d", st.RateLimited, want)
			}
		})
	}

	t.Run("drop before apply", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			return &emulator.Fault{Drop: true}
		})
		req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/oauth/token", strings.NewReader(ccForm(adminID, adminSecret, f.aud).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := f.ts.Client().Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("got %d, want a dropped connection", resp.StatusCode)
		}
		if st := f.srv.Stats(); st.TokensIssued != 0 {
			t.Fatalf("stats = %+v", st)
		}
	})

	t.Run("consultations", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		var mu sync.Mutex
		var seen []string
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			mu.Lock()
			seen = append(seen, p.String()+" "+id)
			mu.Unlock()
			return nil
		})
		f.postToken(ccForm(adminID, adminSecret, f.aud), nil)           // success
		f.postToken(ccForm(adminID, "wrong", f.aud), nil)               // presented, refused
		f.postToken(ccForm("", "", f.aud), []string{readerID, "wrong"}) // Basic, refused
		f.postToken(ccForm("", "", f.aud), []string{readerID, otherSecret})
		f.postToken(ccForm(customID, otherSecret, f.aud), nil) // authenticated, no grant
		want := []string{
			"BeforeApply " + adminID, "AfterApply " + adminID,
			"BeforeApply " + adminID,
			"BeforeApply " + readerID,
			"BeforeApply " + readerID, "AfterApply " + readerID,
			"BeforeApply " + customID,
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(seen, "|") != strings.Join(want, "|") {
			t.Fatalf("consultations\n%q\nwant\n%q", seen, want)
		}
		st := f.srv.Stats()
		if st.TokenRequests[adminID] != 2 || st.TokenRequests[readerID] != 2 || st.TokenRequests[customID] != 1 || st.TokensIssued != 2 {
			t.Fatalf("stats = %+v", st)
		}
	})
}
