// Package emulator implements an in-process emulator of the parts of the Auth0
// Authentication and Management APIs that a client-secret rotation engine
// uses, kept as strict as real Auth0 wherever the engine's real-world code
// paths depend on it:
//
//   - POST /oauth/token: the client credentials grant, form or JSON body,
//     client authentication by body fields (client_secret_post) or HTTP
//     Basic (client_secret_basic). Errors are OAuth-shaped
//     ({"error","error_description"}) with Auth0's codes and texts. A
//     requested scope the client was not granted is refused with 403
//     access_denied "Client has not been granted scopes: ..." (a subset of
//     the grant narrows the token). An optional token-bucket rate limit
//     (Options.TokenRateLimit) answers 429 too_many_requests.
//   - GET /api/v2/clients/{id} (read:clients or read:client_keys), with the
//     fields / include_fields query parameters. Reading client_secret (which
//     a GET without fields does) needs read:client_keys or
//     read:client_credentials; without it Auth0 answers 403
//     insufficient_scope "You cannot read the following fields:
//     client_secret", and so does the emulator.
//   - PATCH /api/v2/clients/{id} (update:clients or update:client_keys;
//     client_secret needs update:client_keys), with Auth0's payload
//     validation errors.
//   - POST /api/v2/clients/{id}/rotate-secret (update:client_keys); refused
//     for a client on private_key_jwt or self_signed_tls_client_auth, as
//     Auth0 documents for the former.
//   - Client credentials: POST, GET /api/v2/clients/{id}/credentials and
//     GET, PATCH (expires_at only), DELETE
//     /api/v2/clients/{id}/credentials/{credential_id}
//     ({create,read,update,delete}:client_credentials). public_key
//     credentials (private_key_jwt): RSA public keys of at least 2048 bits,
//     RS256/RS384/PS256, kid = RFC 7638 thumbprint. x509_cert credentials
//     (self_signed_tls_client_auth): an X.509 certificate within its
//     validity period, thumbprint_sha256 = SHA-256 of its DER, expiring
//     with it. At most two per client, none uploaded twice, an attached one
//     not deletable (credentials.go).
//   - PATCH of client_authentication_methods (update:client_credentials
//     too): 1 or 2 of the client's unexpired credentials of the right type
//     attached to private_key_jwt or to self_signed_tls_client_auth, never
//     both, and exclusive with token_endpoint_auth_method, which the same
//     PATCH must set to null; a client on either method reports no
//     client_secret (authmethods.go).
//   - Client assertions at /oauth/token (client_assertion_type
//     jwt-bearer): alg of the credential, kid optional, RS256/RS384/PS256
//     signature, iss = sub = client_id, aud "https://{domain}/", exp within
//     5 minutes, one-time jti; 401 invalid_client otherwise. While a client
//     is on private_key_jwt its secret is refused (assertion.go).
//   - Self-signed mTLS at /oauth/token: the request the tenant's edge
//     forwards after the TLS handshake, with the cname-api-key,
//     client-certificate and client-certificate-ca-verified headers; the
//     certificate must match an attached, unexpired x509_cert credential
//     (mtls.go). NewMTLSEdge is such an edge, for tests.
//   - Bearer access tokens: HS256 JWTs with Auth0's claims, checked for
//     signature, audience and expiry (401s as Auth0 words them).
//   - Secret propagation (Options.PropagationDelay): after a rotation or a
//     PATCH of client_secret, for that long each token request randomly sees
//     the old or the new secret, as Auth0 warns ("up to 30 seconds"); so
//     with a PATCH that changes the credentials attached to private_key_jwt
//     or self_signed_tls_client_auth (or switches between the methods): the
//     previous or the new configuration.
//   - A Date header on every answer, from the emulator's clock (Options.Now).
//   - Rate limits: a token bucket per tenant for /api/v2 (Options.RateLimit,
//     RatePerSecond/Burst or a Plan preset), with x-ratelimit-limit,
//     x-ratelimit-remaining and x-ratelimit-reset on every /api/v2 response
//     and Auth0's 429 body, without Retry-After (see internal/auth0api/ratelimit.go).
//
// On top of that, tests can inject faults (errors, dropped connections,
// delays, callbacks) before or after a state change, at /api/v2 and
// /oauth/token alike, expire every issued access token, drive the clock
// (Options.Now) and read counters.
//
// Anything else under /api/v2 is a JSON 404, a wrong method a 405.
//
// A *Server is an http.Handler and is safe for concurrent use. It never logs.
package emulator

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value is usable: no rate limits, no
// propagation delay.
type Options struct {
	// RateLimit is the /api/v2 limit in requests per second, as a token
	// bucket refilled at that rate with a burst of the same size; 0 means
	// unlimited (unless RatePerSecond or Plan is set).
	RateLimit int
	// RatePerSecond and Burst set the /api/v2 token bucket explicitly:
	// RatePerSecond > 0 takes precedence over RateLimit and Plan; its burst
	// defaults to the rate rounded up. Burst > 0 overrides the burst of
	// whichever of RatePerSecond, RateLimit or Plan applies; on its own it
	// limits nothing.
	RatePerSecond float64
	Burst         int
	// Plan selects a preset /api/v2 bucket when neither RatePerSecond nor
	// RateLimit is set: "free" (burst 2, 2/s), "essentials" or
	// "professional" (burst 10, 150 per minute = 2.5/s), "enterprise" (burst
	// 50, 16/s); see PlanLimits. New panics on an unknown name.
	Plan string
	// TokenRateLimit limits POST /oauth/token to this many requests per
	// second (token bucket, burst = the rate rounded up); 0 means unlimited.
	// Over it the endpoint answers 429 {"error":"too_many_requests",
	// "error_description":"Global limit has been reached"}.
	TokenRateLimit float64
	// PropagationDelay is how long, after a rotate-secret or a PATCH that
	// changes client_secret, the previous secret stays half-alive: during it
	// each /oauth/token request authenticated with the old or the new secret
	// randomly sees the old or the new state (so either secret fails about
	// half the time); afterwards only the new secret works. 0 (the default)
	// means the new secret is the only one at once. Auth0 documents up to 30
	// seconds. A PATCH that changes the credentials attached to
	// private_key_jwt or self_signed_tls_client_auth, or switches a client
	// between its secret and these methods, propagates the same way: each
	// token request sees the previous or the new configuration (so a
	// detached certificate or key keeps working, at random, for that long).
	PropagationDelay time.Duration
	// Seed seeds the randomness of PropagationDelay; 0 means a random seed.
	Seed uint64
	// Now is the clock of the rate limiters, of PropagationDelay, of
	// credential expiry and timestamps, of client assertion checks, of
	// the validity period of client certificates and of the Date header
	// of every answer; nil
	// means time.Now. (Access-token expiry and fault delays use real time.)
	Now func() time.Time
	// TokenLifetime is the lifetime of issued access tokens; 0 means 24h.
	TokenLifetime time.Duration
	// Audience is the Management API audience. If empty, the audience is
	// derived from the Host of each request: "https://"+Host+"/api/v2/" (and,
	// as a convenience for clients talking plain HTTP to the emulator, also
	// "http://"+Host+"/api/v2/").
	Audience string
	// Tenant is the tenant name reported in client objects; default "emulator".
	Tenant string
	// CNAMEAPIKey is the secret API key of the tenant's custom domain, which
	// Auth0 hands out when it verifies a self-managed custom domain and which
	// the customer's edge sends as the cname-api-key header of every request
	// it forwards. A /oauth/token request carrying a forwarded client
	// certificate (self_signed_tls_client_auth) is accepted only with this
	// key; empty means no custom domain is set up for mTLS, so every such
	// request is refused. See mtls.go and NewMTLSEdge.
	CNAMEAPIKey string
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
	Requests     int // /api/v2 requests received
	TokensIssued int // successful /oauth/token responses
	// TokenRequests counts every /oauth/token request, successful or not, by
	// the client_id it presented (body field, HTTP Basic user or, failing
	// both, the sub of its client assertion; "" if none).
	TokenRequests map[string]int
	RateLimited   int            // 429s served by the rate limiters or by faults, /api/v2 and /oauth/token
	Rotations     map[string]int // clientID -> rotate-secret applied
	SecretPatches map[string]int // clientID -> client_secret changed by PATCH
	// AssertionLogins counts, per client, the tokens issued to a client that
	// authenticated with a private_key_jwt client assertion.
	AssertionLogins map[string]int
	// MTLSLogins counts, per client, the tokens issued to a client that
	// authenticated with self_signed_tls_client_auth: a client certificate
	// forwarded by the tenant's edge (mtls.go).
	MTLSLogins map[string]int
	// CredentialsCreated and CredentialsDeleted count, per client, the
	// credentials created (POST .../credentials) and deleted (DELETE
	// .../credentials/{id}) through the Management API.
	CredentialsCreated map[string]int
	CredentialsDeleted map[string]int
	// AuthMethodPatches counts, per client, the PATCHes that changed its
	// client_authentication_methods: the credentials attached to
	// private_key_jwt or self_signed_tls_client_auth, or a switch between
	// them and the client secret.
	AuthMethodPatches map[string]int
}

// Server is the emulator. Create it with New.
type Server struct {
	opts   Options
	tenant string
	key    []byte // HMAC key signing access tokens

	mu          sync.Mutex
	clients     map[string]*clientRecord
	faults      FaultFunc
	apiBucket   bucket // /api/v2, per tenant
	tokenBucket bucket // /oauth/token
	propagation time.Duration
	rng         *mrand.Rand
	// Tokens carry a sequence number; ExpireTokens marks every token with a
	// sequence number <= expiredUpTo as expired.
	tokenSeq    uint64
	expiredUpTo uint64
	stats       Stats
	// usedAssertions maps client ID + "\x00" + jti of the client assertions
	// accepted so far to their expiry, for refusing replays (assertion.go).
	usedAssertions map[string]time.Time
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
	// previous holds the secrets replaced less than the propagation delay
	// ago, oldest first (see propagation.go).
	previous []replacedSecret
	// creds are the client's credentials, oldest first (credentials.go).
	creds []*credential
	// auth is the client's client_authentication_methods: private_key_jwt
	// or self_signed_tls_client_auth and the IDs of the credentials
	// attached to it; the zero value while the client authenticates with
	// its secret (authmethods.go).
	auth authState
	// previousAuth holds the configurations replaced less than the
	// propagation delay ago, oldest first.
	previousAuth []replacedAuth
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
			TokenRequests: make(map[string]int),
			Rotations:     make(map[string]int),
			SecretPatches: make(map[string]int),

			AssertionLogins:    make(map[string]int),
			MTLSLogins:         make(map[string]int),
			CredentialsCreated: make(map[string]int),
			CredentialsDeleted: make(map[string]int),
			AuthMethodPatches:  make(map[string]int),
		},
		propagation:    opts.PropagationDelay,
		usedAssertions: make(map[string]time.Time),
	}
	s.apiBucket.set(apiLimits(opts))
	if opts.TokenRateLimit > 0 {
		s.tokenBucket.set(burstFor(opts.TokenRateLimit), opts.TokenRateLimit)
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("emulator: crypto/rand failed: " + err.Error())
		}
		seed = binary.LittleEndian.Uint64(b[:])
	}
	s.rng = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return s
}

// now is the Server's clock (Options.Now, default time.Now).
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// ServeHTTP dispatches to the token endpoint or the Management API; anything
// else is answered with a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Auth0 dates every answer; the emulator on its own clock (Options.Now), so that a
	// client comparing clocks sees the tenant's time, not the test machine's.
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
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

// RemoveClient deletes a client, as deleting the application in the dashboard does: the
// Management API then answers 404 for it and the token endpoint refuses its credentials.
// It reports whether the client existed.
func (s *Server) RemoveClient(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.clients[clientID]
	delete(s.clients, clientID)
	return ok
}

// SetGrant replaces the scopes clientID is granted for audience ("management" for the
// Management API), as changing a client grant in the dashboard does. Tokens already issued
// keep the scopes they were issued with until they expire, as Auth0's do.
func (s *Server) SetGrant(clientID, audience string, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return fmt.Errorf("emulator: no client %q", clientID)
	}
	if rec.grants == nil {
		rec.grants = map[string][]string{}
	}
	rec.grants[audience] = append([]string(nil), scopes...)
	return nil
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
	st.TokenRequests = maps.Clone(s.stats.TokenRequests)
	st.Rotations = maps.Clone(s.stats.Rotations)
	st.SecretPatches = maps.Clone(s.stats.SecretPatches)
	st.AssertionLogins = maps.Clone(s.stats.AssertionLogins)
	st.MTLSLogins = maps.Clone(s.stats.MTLSLogins)
	st.CredentialsCreated = maps.Clone(s.stats.CredentialsCreated)
	st.CredentialsDeleted = maps.Clone(s.stats.CredentialsDeleted)
	st.AuthMethodPatches = maps.Clone(s.stats.AuthMethodPatches)
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
		// Auth0 reports the tenant's signing certificate and the default
		// refresh token policy for every client (see go-auth0's recorded
		// client responses). The certificate is a placeholder: the emulator
		// signs nothing with it.
		"signing_keys":  json.RawMessage(`[{"cert":"-----BEGIN CERTIFICATE-----\r\nZW11bGF0b3I=\r\n-----END CERTIFICATE-----\r\n","pkcs7":"-----BEGIN PKCS7-----\r\nZW11bGF0b3I=\r\n-----END PKCS7-----\r\n","subject":"deprecated"}]`),
		"refresh_token": json.RawMessage(`{"rotation_type":"non-rotating","expiration_type":"non-expiring","leeway":0,"token_lifetime":2592000,"infinite_token_lifetime":true,"infinite_idle_token_lifetime":true,"idle_token_lifetime":1296000}`),
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

// RotateSecretOutside rotates clientID's secret as someone clicking "Rotate" in the Auth0
// Dashboard does: behind the back of whatever holds the old one (a drift for Vault). It
// is not counted in Stats().Rotations, which counts the Management API's rotate-secret,
// and answers the new secret.
func (s *Server) RotateSecretOutside(clientID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return "", fmt.Errorf("emulator: no client %q", clientID)
	}
	if rec.auth.method != "" {
		return "", fmt.Errorf("emulator: client %q authenticates with %s, not a secret", clientID, rec.auth.method)
	}
	secret := randomSecret()
	s.replaceSecretLocked(rec, secret)
	return secret, nil
}
