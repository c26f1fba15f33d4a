package emulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file implements POST /oauth/token (client credentials grant) and the
// access tokens it issues. Client assertions (private_key_jwt) are verified
// in assertion.go, client certificates forwarded by the tenant's edge
// (self_signed_tls_client_auth) in mtls.go.
//
// Access tokens are HS256 JWTs signed with a per-Server random key, so they
// are verified without keeping state. Besides the usual Auth0 claims they
// carry a sequence number (for ExpireTokens) and a millisecond expiry (so
// sub-second TokenLifetime values used by tests are honoured exactly).

// oauthError is the Authentication API error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenResponse is the successful /oauth/token body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// tokenClaims are the claims of an issued access token.
type tokenClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	Scope     string `json:"scope"`
	GrantType string `json:"gty"`
	AZP       string `json:"azp"`
	ID        string `json:"jti"`
	Seq       uint64 `json:"emu_seq"`
	ExpiresMS int64  `json:"emu_exp_ms"`
}

// otherGrantTypes are grant types Auth0 knows but that the emulator's
// machine-to-machine clients are not allowed to use.
var otherGrantTypes = setOf(
	"authorization_code",
	"implicit",
	"refresh_token",
	"password",
	"http://auth0.com/oauth/grant-type/password-realm",
	"http://auth0.com/oauth/grant-type/passwordless/otp",
	"http://auth0.com/oauth/grant-type/mfa-oob",
	"http://auth0.com/oauth/grant-type/mfa-otp",
	"http://auth0.com/oauth/grant-type/mfa-recovery-code",
	"urn:ietf:params:oauth:grant-type:device_code",
	"urn:ietf:params:oauth:grant-type:token-exchange",
	"urn:ietf:params:oauth:grant-type:jwt-bearer",
	"urn:openid:params:grant-type:ciba",
	"urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token",
)

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// tokenParams reads the request parameters from a form or JSON body.
func tokenParams(r *http.Request) (map[string]string, bool) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	params := map[string]string{}
	if mediaType == "application/json" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, false
		}
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, false
		}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				params[k] = s
			}
		}
		return params, true
	}
	if err := r.ParseForm(); err != nil {
		return nil, false
	}
	for k, v := range r.PostForm {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	return params, true
}

// presentedClientID is the client_id a token request presents: the HTTP
// Basic user (form-decoded where possible), the client_id parameter, or the
// sub of its client assertion (unverified).
func presentedClientID(r *http.Request, params map[string]string) string {
	if user, _, basic := r.BasicAuth(); basic {
		if u, err := url.QueryUnescape(user); err == nil {
			return u
		}
		return user
	}
	if id := params["client_id"]; id != "" {
		return id
	}
	if a := params["client_assertion"]; a != "" {
		return assertionIssuer(a)
	}
	return ""
}

// serveToken implements POST /oauth/token: counting, BeforeApply faults, the
// rate limiter, then the grant.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	var params map[string]string
	paramsOK := false
	if r.Method == http.MethodPost {
		params, paramsOK = tokenParams(r)
	}
	presented := presentedClientID(r, params)
	s.mu.Lock()
	s.stats.TokenRequests[presented]++
	s.mu.Unlock()

	if s.runFault(BeforeApply, w, r, presented, endpointToken) {
		return
	}
	if !s.tokenRateLimit(w) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, http.StatusMethodNotAllowed, "", "")
		return
	}
	if !paramsOK {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Invalid request body")
		return
	}

	grantType := params["grant_type"]
	switch {
	case grantType == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
		return
	case grantType != "client_credentials" && !otherGrantTypes[grantType]:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+grantType)
		return
	}

	// Client authentication: a client certificate forwarded by the
	// tenant's edge (self_signed_tls_client_auth), a client assertion
	// (private_key_jwt, RFC 7523), HTTP Basic (client_secret_basic,
	// credentials form-urlencoded before base64 as RFC 6749 section 2.3.1
	// requires) or body fields (client_secret_post). A request may use only
	// one of them (RFC 6749 section 2.3).
	assertionType, assertion := params["client_assertion_type"], params["client_assertion"]
	byAssertion := assertionType != "" || assertion != ""
	_, _, basic := r.BasicAuth()
	byCert := len(r.Header.Values(HeaderClientCertificate)) > 0
	var cert *x509.Certificate
	if byCert {
		var status int
		var code, desc string
		if cert, status, code, desc = s.forwardedCertificate(r, params, byAssertion, basic); cert == nil {
			writeOAuthError(w, status, code, desc)
			return
		}
	}
	switch {
	case !byAssertion:
	case assertionType == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: client_assertion_type")
		return
	case assertion == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: client_assertion")
		return
	case assertionType != ClientAssertionType:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request",
			"Invalid client_assertion_type: only "+ClientAssertionType+" is supported")
		return
	case basic || params["client_secret"] != "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request",
			"Only one client authentication method may be used: send client_assertion without client_secret or HTTP Basic credentials")
		return
	}
	clientID, clientSecret := params["client_id"], params["client_secret"]
	if user, pass, basic := r.BasicAuth(); basic {
		u, err1 := url.QueryUnescape(user)
		p, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || (clientID != "" && clientID != u) {
			writeOAuthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
			return
		}
		clientID, clientSecret = u, p
	}

	audience := params["audience"]
	host := r.Host
	now := s.now()

	s.mu.Lock()
	var rec *clientRecord
	var known, authenticated bool
	var refusal string // error_description of a 401 invalid_client
	switch {
	case byCert:
		refusal = s.verifyCertificateLocked(clientID, cert, now)
		rec, known = s.clients[clientID]
		authenticated = refusal == "" && known
	case byAssertion:
		clientID, refusal = s.verifyAssertionLocked(assertion, clientID, host, now)
		rec, known = s.clients[clientID]
		authenticated = refusal == "" && known
	default:
		rec, known = s.clients[clientID]
		// While a client is on private_key_jwt or
		// self_signed_tls_client_auth (as this request sees it: a change
		// may still be propagating), its secret is refused.
		authenticated = known && s.visibleAuthLocked(rec, now).method == "" &&
			s.secretAcceptedLocked(rec, clientSecret, now)
	}
	var granted []string
	var hasGrant, audienceKnown bool
	if authenticated {
		key := audience
		if s.isManagementAudience(audience, host) {
			key = ManagementGrant
			audienceKnown = true
		} else {
			audienceKnown = s.customAudienceKnownLocked(audience)
		}
		granted, hasGrant = rec.grants[key]
		granted = append([]string(nil), granted...)
	}
	s.mu.Unlock()

	switch {
	case (byCert || byAssertion) && !authenticated:
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", refusal)
		return
	case !authenticated:
		writeOAuthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	case grantType != "client_credentials":
		writeOAuthError(w, http.StatusForbidden, "unauthorized_client",
			"Grant type '"+grantType+"' not allowed for the client.")
		return
	case audience == "":
		writeOAuthError(w, http.StatusForbidden, "access_denied",
			"No audience parameter was provided, and no default audience has been configured")
		return
	case !audienceKnown:
		writeOAuthError(w, http.StatusForbidden, "access_denied",
			"Service not enabled within domain: "+audience)
		return
	case !hasGrant:
		writeOAuthError(w, http.StatusForbidden, "access_denied",
			`Client is not authorized to access "`+audience+`". You need to create a "client-grant" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants`)
		return
	}

	scopes := granted
	if requested, ok := params["scope"]; ok {
		want := strings.Fields(requested)
		if missing := ungrantedScopes(granted, want); len(missing) > 0 {
			writeOAuthError(w, http.StatusForbidden, "access_denied",
				"Client has not been granted scopes: "+strings.Join(missing, " "))
			return
		}
		scopes = narrowScopes(granted, want)
	}
	// A test can act at the moment a client has proved its credentials, e.g. to stop a
	// process right after it verified a new secret.
	if s.runFault(AfterApply, w, r, clientID, endpointToken) {
		return
	}
	switch {
	case byCert:
		s.mu.Lock()
		s.stats.MTLSLogins[clientID]++
		s.mu.Unlock()
	case byAssertion:
		s.mu.Lock()
		s.stats.AssertionLogins[clientID]++
		s.mu.Unlock()
	}
	token, expiresIn := s.issueToken(host, clientID, audience, scopes)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: token,
		Scope:       strings.Join(scopes, " "),
		ExpiresIn:   expiresIn,
		TokenType:   "Bearer",
	})
}

// ungrantedScopes lists the requested scopes that are not granted, in
// request order and without duplicates.
func ungrantedScopes(granted, requested []string) []string {
	have := make(map[string]bool, len(granted))
	for _, sc := range granted {
		have[sc] = true
	}
	var out []string
	for _, sc := range requested {
		if !have[sc] {
			out = append(out, sc)
			have[sc] = true
		}
	}
	return out
}

// isManagementAudience reports whether aud is the Management API audience
// for a request to host.
func (s *Server) isManagementAudience(aud, host string) bool {
	if s.opts.Audience != "" {
		return aud == s.opts.Audience
	}
	return aud == "https://"+host+"/api/v2/" || aud == "http://"+host+"/api/v2/"
}

// customAudienceKnownLocked reports whether any client has a grant for the
// custom API aud. s.mu must be held.
func (s *Server) customAudienceKnownLocked(aud string) bool {
	if aud == "" || aud == ManagementGrant {
		return false
	}
	for _, c := range s.clients {
		if _, ok := c.grants[aud]; ok {
			return true
		}
	}
	return false
}

// narrowScopes keeps the granted scopes that were requested (all of them are
// granted by then), in grant order and without duplicates.
func narrowScopes(granted, requested []string) []string {
	want := make(map[string]bool, len(requested))
	for _, sc := range requested {
		want[sc] = true
	}
	out := []string{}
	for _, sc := range granted {
		if want[sc] {
			out = append(out, sc)
			delete(want, sc)
		}
	}
	return out
}

// issueToken mints an access token and returns it with its expires_in.
func (s *Server) issueToken(host, clientID, audience string, scopes []string) (string, int64) {
	s.mu.Lock()
	s.tokenSeq++
	seq := s.tokenSeq
	s.stats.TokensIssued++
	s.mu.Unlock()

	now := time.Now()
	exp := now.Add(s.opts.TokenLifetime)
	expiresIn := int64(s.opts.TokenLifetime / time.Second)
	if expiresIn < 1 {
		expiresIn = 1
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims := tokenClaims{
		Issuer:    "https://" + host + "/",
		Subject:   clientID + "@clients",
		Audience:  audience,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Unix() + expiresIn,
		Scope:     strings.Join(scopes, " "),
		GrantType: "client-credentials",
		AZP:       clientID,
		ID:        hex.EncodeToString(jti),
		Seq:       seq,
		ExpiresMS: exp.UnixMilli(),
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payloadJSON, _ := json.Marshal(claims)
	signingInput := header + "." + base64.RawURLEncoding.EncodeToString(payloadJSON)
	return signingInput + "." + s.sign(signingInput), expiresIn
}

func (s *Server) sign(input string) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(input))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// tokenState is the outcome of verifying a bearer token.
type tokenState int

const (
	tokenValid tokenState = iota
	tokenInvalid
	tokenExpired
)

// verifyToken checks a bearer token presented to the Management API at host.
func (s *Server) verifyToken(token, host string) (*tokenClaims, tokenState) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenInvalid
	}
	if !hmac.Equal([]byte(parts[2]), []byte(s.sign(parts[0]+"."+parts[1]))) {
		return nil, tokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, tokenInvalid
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, tokenInvalid
	}
	s.mu.Lock()
	revoked := c.Seq <= s.expiredUpTo
	s.mu.Unlock()
	if revoked || time.Now().UnixMilli() >= c.ExpiresMS {
		return &c, tokenExpired
	}
	if !s.isManagementAudience(c.Audience, host) {
		return &c, tokenInvalid
	}
	return &c, tokenValid
}

// ExpireTokens makes every access token issued so far expired: using one
// afterwards yields 401 "Expired token received for JSON Web Token
// validation". Tokens issued later are unaffected.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	s.expiredUpTo = s.tokenSeq
	s.mu.Unlock()
}
