package auth0api

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

func TestRateLimiterObservesAuth0Headers(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		status  int
		headers map[string]string
		want    time.Time
	}{
		{"not a 429", 200, map[string]string{"Retry-After": "30"}, time.Time{}},
		{"Retry-After seconds", 429, map[string]string{"Retry-After": "7"}, now.Add(7 * time.Second)},
		{"Retry-After date", 429, map[string]string{"Retry-After": now.Add(9 * time.Second).Format(http.TimeFormat)}, now.Add(9 * time.Second)},
		{"X-RateLimit-Reset", 429, map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Unix()+30, 10)}, now.Add(30 * time.Second)},
		{"no headers", 429, nil, now.Add(time.Second)},
		// Auth0's burst limit: no Retry-After, and a reset of the current second.
		{"reset now, no Retry-After", 429, map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Unix(), 10)}, now.Add(MinRateLimitPause)},
		{"reset in the past", 429, map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Unix()-5, 10)}, now.Add(MinRateLimitPause)},
		{"absurd wait is capped", 429, map[string]string{"Retry-After": "86400"}, now.Add(MaxRateLimitPause)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewRateLimiter(2, clock.Real{})
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			for k, v := range tc.headers {
				resp.Header.Set(k, v)
			}
			l.Observe(resp, now)
			if !l.blockedUntil.Equal(tc.want) {
				t.Fatalf("blocked until %v, want %v", l.blockedUntil, tc.want)
			}
		})
	}
}
