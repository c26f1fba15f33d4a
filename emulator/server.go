// Package emulator implements an in-process emulator of the parts of the Auth0
// Authentication and Management APIs that a client-secret rotation engine
// uses:
//
//   - POST /oauth/token (client credentials grant, form or JSON body, client
//     authentication by body fields or HTTP Basic),
//   - GET /api/v2/clients/{id},
//   - PATCH /api/v2/clients/{id},
//   - POST /api/v2/clients/{id}/rotate-secret.
//
// Status codes and error bodies follow what Auth0 documents and returns. On
// top of that, tests can inject faults (errors, dropped connections, delays,
// callbacks) before or after a state change, impose a rate limit, expire every
// issued access token, and read counters.
//
// A *Server is an http.Handler and is safe for concurrent use. It never logs.
package emulator

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// RateLimit is the maximum number of /api/v2 requests per second, counted
	// in fixed one-second windows; 0 means unlimited. /oauth/token is never
	// limited.
	RateLimit int
	// TokenLifetime is the lifetime of issued access tokens; 0 means 24h.
	TokenLifetime time.Duration
	// Audience is the Management API audience. If empty, the audience is
	// derived from the Host of each request: "https://"+Host+"/api/v2/" (and,
	// as a convenience for clients talking plain HTTP to the emulator, also
	// "http://"+Host+"/api/v2/").
	Audience string
	// Tenant is the tenant name reported in client objects; default "emulator".
	Tenant string
}

// ManagementGrant is the Client.Grants key that stands for the Management API
// audience, whatever that audience is.
const ManagementGrant = "management"

// Client describes an Auth0 application (client) known to the emulator.
type Client struct {
	ClientID     string
	ClientSecret string // if empty, AddClient generates one
	Name         string
	// Grants maps an audience to the scopes granted to this client for it.
	// The key ManagementGrant ("management") means the Management API; any
	// other key is the identifier of a custom API.
	Grants map[string][]string
}

// Stats holds counters since the Server was created.
type Stats struct {
	Requests      int            // /api/v2 requests received
	TokensIssued  int            // successful /oauth/token responses
	RateLimited   int            // 429s served by the rate limiter or by faults
	Rotations     map[string]int // clientID -> rotate-secret applied
	SecretPatches map[string]int // clientID -> client_secret changed by PATCH
}

// Server is the emulator. Create it with New.
type Server struct {
	opts   Options
	tenant string
	key    []byte // HMAC key signing access tokens

	mu      sync.Mutex
	clients map[string]*clientRecord
	faults  FaultFunc
	limiter rateLimiter
	// Tokens carry a sequence number; ExpireTokens marks every token with a
	// sequence number <= expiredUpTo as expired.
	tokenSeq    uint64
	expiredUpTo uint64
	stats       Stats
}

// clientRecord is the stored state of one client.
type clientRecord struct {
	id     string
	secret string
	name   string
	grants map[string][]string
	// attrs holds every other client property as raw JSON (defaults plus
	// whatever PATCH set).
	attrs map[string]json.RawMessage
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	tenant := opts.Tenant
	if tenant == "" {
		tenant = "emulator"
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	s := &Server{
		opts:    opts,
		tenant:  tenant,
		key:     key,
		clients: make(map[string]*clientRecord),
		stats: Stats{
			Rotations:     make(map[string]int),
			SecretPatches: make(map[string]int),
		},
	}
	s.limiter.limit = opts.RateLimit
	return s
}

// ServeHTTP dispatches to the token endpoint or the Management API; anything
// else is answered with a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth/token":
		s.serveToken(w, r)
	case p == "/api/v2" || strings.HasPrefix(p, "/api/v2/"):
		s.serveManagement(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, "Not Found", "")
	}
}

// AddClient stores c, replacing any client with the same ID, and returns the
// stored client. A missing ClientID or ClientSecret is generated; a missing
// Name defaults to the client ID.
func (s *Server) AddClient(c Client) Client {
	if c.ClientID == "" {
		c.ClientID = randomClientID()
	}
	if c.ClientSecret == "" {
		c.ClientSecret = randomSecret()
	}
	if c.Name == "" {
		c.Name = c.ClientID
	}
	rec := &clientRecord{
		id:     c.ClientID,
		secret: c.ClientSecret,
		name:   c.Name,
		grants: copyGrants(c.Grants),
		attrs:  defaultAttrs(),
	}
	s.mu.Lock()
	s.clients[rec.id] = rec
	s.mu.Unlock()
	c.Grants = copyGrants(c.Grants)
	return c
}

// ClientSecret returns the current secret of a client.
func (s *Server) ClientSecret(clientID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return "", false
	}
	return rec.secret, true
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Rotations = make(map[string]int, len(s.stats.Rotations))
	for k, v := range s.stats.Rotations {
		st.Rotations[k] = v
	}
	st.SecretPatches = make(map[string]int, len(s.stats.SecretPatches))
	for k, v := range s.stats.SecretPatches {
		st.SecretPatches[k] = v
	}
	return st
}

func copyGrants(g map[string][]string) map[string][]string {
	if g == nil {
		return nil
	}
	out := make(map[string][]string, len(g))
	for aud, scopes := range g {
		out[aud] = append([]string(nil), scopes...)
	}
	return out
}

// defaultAttrs are the properties of a freshly created machine-to-machine
// application, as Auth0 reports them.
func defaultAttrs() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"description":                         json.RawMessage(`""`),
		"global":                              json.RawMessage(`false`),
		"app_type":                            json.RawMessage(`"non_interactive"`),
		"is_first_party":                      json.RawMessage(`true`),
		"oidc_conformant":                     json.RawMessage(`true`),
		"is_token_endpoint_ip_header_trusted": json.RawMessage(`false`),
		"callbacks":                           json.RawMessage(`[]`),
		"allowed_origins":                     json.RawMessage(`[]`),
		"web_origins":                         json.RawMessage(`[]`),
		"client_aliases":                      json.RawMessage(`[]`),
		"allowed_clients":                     json.RawMessage(`[]`),
		"allowed_logout_urls":                 json.RawMessage(`[]`),
		"grant_types":                         json.RawMessage(`["client_credentials"]`),
		"token_endpoint_auth_method":          json.RawMessage(`"client_secret_post"`),
		"jwt_configuration":                   json.RawMessage(`{"alg":"RS256","lifetime_in_seconds":36000,"secret_encoded":false}`),
		"sso_disabled":                        json.RawMessage(`false`),
		"cross_origin_authentication":         json.RawMessage(`false`),
		"custom_login_page_on":                json.RawMessage(`true`),
		"client_metadata":                     json.RawMessage(`{}`),
	}
}

// secretAlphabet is the alphabet of generated client secrets (64 symbols, so
// masking a random byte with 63 is uniform).
const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// randomSecret returns a new 64-character client secret from crypto/rand.
func randomSecret() string {
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = secretAlphabet[b[i]&63]
	}
	return string(b)
}

// randomClientID returns a 32-character alphanumeric ID like Auth0's.
func randomClientID() string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 32)
	buf := make([]byte, 64)
	for len(out) < 32 {
		if _, err := rand.Read(buf); err != nil {
			panic("emulator: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			// Reject the top of the byte range to keep the mapping uniform.
			if c < 62*4 && len(out) < 32 {
				out = append(out, alnum[c%62])
			}
		}
	}
	return string(out)
}

// apiError is the Management API error body.
type apiError struct {
	StatusCode int               `json:"statusCode"`
	Error      string            `json:"error"`
	Message    string            `json:"message"`
	ErrorCode  string            `json:"errorCode,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// writeAPIError writes a Management API style error. An empty message
// defaults to the HTTP reason phrase.
func writeAPIError(w http.ResponseWriter, status int, message, errorCode string) {
	if message == "" {
		message = http.StatusText(status)
	}
	writeJSON(w, status, apiError{
		StatusCode: status,
		Error:      http.StatusText(status),
		Message:    message,
		ErrorCode:  errorCode,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"statusCode":500,"error":"Internal Server Error","message":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
