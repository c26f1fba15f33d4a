package auth0api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

// The fewest scopes to grant, Auth0's alternatives counted: read:client_keys reads a
// client as read:clients does, read:client_credentials reads its secret as
// read:client_keys does, update:client_keys updates a client as update:clients does.
func TestScopesToGrant(t *testing.T) {
	cases := []struct {
		name    string
		granted []string
		needs   []Need
		want    []string
	}{
		{"all met", []string{"read:clients", "update:client_keys"}, []Need{NeedReadClient, NeedChangeSecret}, nil},
		{"met by the alternative", []string{"read:client_keys", "update:client_keys"}, []Need{NeedReadClient, NeedUpdateClient}, nil},
		{"the first of a need", []string{"read:clients"}, []Need{NeedReadClient, NeedChangeSecret}, []string{"update:client_keys"}},
		{"one scope meets two needs", nil, []Need{NeedReadClient, NeedReadSecret}, []string{"read:client_keys"}},
		{"the scope meeting more needs wins", []string{"read:clients"}, []Need{NeedReadSecret, NeedReadCredentials}, []string{"read:client_credentials"}},
		{"each unmet need once", nil, []Need{NeedCreateCredential, NeedDeleteCredential, NeedCreateCredential}, []string{"create:client_credentials", "delete:client_credentials"}},
	}
	for _, tc := range cases {
		if got := ScopesToGrant(tc.granted, tc.needs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		for _, n := range tc.needs {
			if !n.MetBy(append(slices.Clone(tc.granted), tc.want...)) {
				t.Errorf("%s: granting %v leaves %v unmet", tc.name, tc.want, n)
			}
		}
	}
}

func TestParseAccessToken(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	cases := []struct {
		name, token string
		scopes, aud []string
		iss         string
		err         error
	}{
		{"scopes and audience", jwt(`{"scope":"read:clients  update:client_keys","aud":"https://t.auth0.com/api/v2/","iss":"https://t.auth0.com/"}`),
			[]string{"read:clients", "update:client_keys"}, []string{"https://t.auth0.com/api/v2/"}, "https://t.auth0.com/", nil},
		{"audience list", jwt(`{"scope":"read:clients","aud":["https://t.auth0.com/api/v2/","https://t.auth0.com/userinfo"]}`),
			[]string{"read:clients"}, []string{"https://t.auth0.com/api/v2/", "https://t.auth0.com/userinfo"}, "", nil},
		{"no scope claim", jwt(`{"aud":"x"}`), nil, []string{"x"}, "", nil},
		{"padded payload", "e30." + base64.URLEncoding.EncodeToString([]byte(`{"scope":"a"}`)) + ".c2ln", []string{"a"}, nil, "", nil},
		{"opaque token", "abc123", nil, nil, "", ErrNotJWT},
		{"payload not JSON", jwt(`nope`), nil, nil, "", ErrNotJWT},
	}
	for _, tc := range cases {
		got, err := ParseAccessToken(tc.token)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && (!slices.Equal(got.Scopes, tc.scopes) || !slices.Equal(got.Audience, tc.aud) || got.Issuer != tc.iss) {
			t.Errorf("%s: %+v, want scopes %v, aud %v, iss %q", tc.name, got, tc.scopes, tc.aud, tc.iss)
		}
	}
}

func TestParseRateLimit(t *testing.T) {
	h := http.Header{}
	if _, ok := ParseRateLimit(h); ok {
		t.Error("no headers parsed as a rate limit")
	}
	h.Set("X-RateLimit-Limit", "abc")
	if _, ok := ParseRateLimit(h); ok {
		t.Error("a non-numeric limit parsed")
	}
	// Auth0 sends them in lower case; Go's client canonicalizes what it reads.
	h = http.Header{}
	h.Set("x-ratelimit-limit", "50")
	h.Set("x-ratelimit-remaining", "49")
	h.Set("x-ratelimit-reset", "1900000000")
	st, ok := ParseRateLimit(h)
	if !ok || st.Limit != 50 || st.Remaining != 49 || !st.Reset.Equal(time.Unix(1900000000, 0)) {
		t.Errorf("%+v %v, want 50/49/1900000000", st, ok)
	}
}

// The Date header has one second of resolution: clocks within it (and the round trip)
// agree; beyond, the skew is estimated from the middle of both.
func TestClockSkew(t *testing.T) {
	date := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name           string
		sent, received time.Time
		want           time.Duration
	}{
		{"same second", date.Add(300 * time.Millisecond), date.Add(400 * time.Millisecond), 0},
		{"round trip spans the second", date.Add(-2 * time.Second), date.Add(2 * time.Second), 0},
		{"Vault ahead", date.Add(30 * time.Second), date.Add(30 * time.Second), 29500 * time.Millisecond},
		{"Vault behind", date.Add(-90 * time.Second), date.Add(-90 * time.Second), -90500 * time.Millisecond},
	}
	for _, tc := range cases {
		a := &Answer{Date: date, Sent: tc.sent, Received: tc.received}
		if got, ok := a.ClockSkew(); !ok || got != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := (&Answer{Sent: date, Received: date}).ClockSkew(); ok {
		t.Error("a skew without a Date")
	}
}
