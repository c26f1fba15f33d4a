package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"slices"
	"strings"
	"time"
)

// This file implements private_key_jwt client authentication at /oauth/token
// (RFC 7523 client assertions, as Auth0 documents them in "Authenticate with
// Private Key JWT"), and helpers that sign assertions for tests.

// ClientAssertionType is the client_assertion_type of a private_key_jwt
// client assertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	// MaxAssertionLifetime is the longest lifetime Auth0 accepts for a
	// client assertion: "Auth0 supports a maximum of 5 minutes for the
	// lifetime of a token". exp may be at most this far after iat, and at
	// most this far (plus AssertionClockSkew) after the current time.
	MaxAssertionLifetime = 5 * time.Minute
	// AssertionClockSkew is the clock skew allowed for iat and nbf ("A
	// clock skew of up to 10 seconds is allowed for iat and nbf") and, by
	// the emulator, for the upper bound of exp. exp must still be in the
	// future, without skew.
	AssertionClockSkew = 10 * time.Second
	// maxAssertionClaim and maxAssertionAlg are Auth0's length limits for
	// iss, sub and jti, and for alg (64 and 16 characters).
	maxAssertionClaim = 64
	maxAssertionAlg   = 16
)

// assertionHeader is the JOSE header of a client assertion.
type assertionHeader struct {
	Alg string  `json:"alg"`
	Kid *string `json:"kid"`
}

// assertionClaims are the claims of a client assertion the emulator checks.
// Numeric dates are kept raw to tell a missing claim from a bad one.
type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp json.RawMessage `json:"exp"`
	Iat json.RawMessage `json:"iat"`
	Nbf json.RawMessage `json:"nbf"`
	Jti *string         `json:"jti"`
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly
// fractional). present is false for a missing or null claim.
func numericDate(raw json.RawMessage) (t time.Time, present, ok bool) {
	if len(raw) == 0 || jsonType(raw) == "null" {
		return time.Time{}, false, true
	}
	var f float64
	if jsonType(raw) != "number" || json.Unmarshal(raw, &f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}

// assertionIssuer returns the client_id a client assertion names (its sub,
// unverified), or "" if it cannot be read. It is what a token request
// presents when it authenticates by assertion without a client_id parameter.
func assertionIssuer(assertion string) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Sub
}

// assertionAudiences returns the aud values a client assertion to host may
// carry: the tenant's URL with its trailing slash, "https://{domain}/" (and
// "http://{domain}/" for clients talking plain HTTP to the emulator); with
// Options.Audience set, the URL that audience belongs to.
func (s *Server) assertionAudiences(host string) []string {
	if aud := s.opts.Audience; aud != "" {
		if base, ok := strings.CutSuffix(aud, "api/v2/"); ok {
			return []string{base}
		}
		return []string{aud}
	}
	return []string{"https://" + host + "/", "http://" + host + "/"}
}

// audienceMatches checks a client assertion's aud: a string, or an array of
// exactly one string, equal to one of want.
func audienceMatches(raw json.RawMessage, want []string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil && jsonType(raw) == "string" {
		return slices.Contains(want, one)
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) == 1 {
		return slices.Contains(want, many[0])
	}
	return false
}

// verifyAssertionLocked authenticates the client of a token request by its
// client assertion. It returns the client ID, or the error_description of a
// 401 invalid_client. clientIDParam is the client_id parameter, if any. s.mu
// must be held.
func (s *Server) verifyAssertionLocked(assertion, clientIDParam, host string, now time.Time) (string, string) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", "Invalid client assertion: not a signed JWT (JWS compact serialization)"
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return "", "Invalid client assertion: not a signed JWT (JWS compact serialization)"
		}
		raw[i] = b
	}
	var hdr assertionHeader
	var claims assertionClaims
	if json.Unmarshal(raw[0], &hdr) != nil || jsonType(raw[0]) != "object" {
		return "", "Invalid client assertion: its header is not a JSON object"
	}
	if json.Unmarshal(raw[1], &claims) != nil || jsonType(raw[1]) != "object" {
		return "", "Invalid client assertion: its payload is not a JSON object with string iss, sub and jti"
	}
	switch {
	case hdr.Alg == "" || len(hdr.Alg) > maxAssertionAlg:
		return "", "Invalid client assertion: missing or invalid 'alg' header"
	case claims.Iss == "" || claims.Sub == "":
		return "", "Invalid client assertion: 'iss' and 'sub' claims are required"
	case len(claims.Iss) > maxAssertionClaim || len(claims.Sub) > maxAssertionClaim:
		return "", "Invalid client assertion: 'iss' and 'sub' claims must be at most 64 characters"
	case claims.Iss != claims.Sub:
		return "", "Invalid client assertion: 'iss' and 'sub' claims must both be the client_id"
	case clientIDParam != "" && clientIDParam != claims.Sub:
		return "", "Invalid client assertion: 'sub' claim does not match client_id"
	}
	clientID := claims.Sub
	rec, ok := s.clients[clientID]
	if !ok {
		return "", "Invalid client assertion: unknown client"
	}
	visible := s.visibleAuthLocked(rec, now)
	if !visible.has(MethodPrivateKeyJWT) {
		return "", "Client is not configured for private_key_jwt authentication"
	}
	attached := visible.creds

	// The candidate keys: the attached credential with the header's kid,
	// or every attached one; expired credentials never authenticate.
	var candidates []*credential
	for _, id := range attached {
		if c := rec.findCredential(id); c != nil && (hdr.Kid == nil || c.kid == *hdr.Kid) {
			candidates = append(candidates, c)
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Sprintf("Invalid client assertion: no credential enabled for private_key_jwt has kid %q", *hdr.Kid)
	}
	live := candidates[:0:0]
	for _, c := range candidates {
		if !c.expiredAt(now) {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return "", "Invalid client assertion: the credential has expired"
	}
	matching := live[:0:0]
	for _, c := range live {
		if c.alg == hdr.Alg {
			matching = append(matching, c)
		}
	}
	if len(matching) == 0 {
		return "", fmt.Sprintf("Invalid client assertion: 'alg' %q does not match the algorithm of the credential", hdr.Alg)
	}
	signingInput := parts[0] + "." + parts[1]
	verified := false
	for _, c := range matching {
		if verifyRSA(c.key, c.alg, signingInput, raw[2]) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return "", "Invalid client assertion: invalid signature"
	}

	if len(claims.Aud) == 0 || !audienceMatches(claims.Aud, s.assertionAudiences(host)) {
		return "", fmt.Sprintf("Invalid client assertion: 'aud' claim must be %q", s.assertionAudiences(host)[0])
	}
	exp, present, ok := numericDate(claims.Exp)
	switch {
	case !present:
		return "", "Invalid client assertion: 'exp' claim is required"
	case !ok:
		return "", "Invalid client assertion: 'exp' claim must be a NumericDate"
	case !now.Before(exp):
		return "", "Invalid client assertion: the assertion has expired"
	case exp.After(now.Add(MaxAssertionLifetime + AssertionClockSkew)):
		return "", "Invalid client assertion: 'exp' claim must specify a time that is no more than 5 minutes in the future"
	}
	iat, present, ok := numericDate(claims.Iat)
	switch {
	case !ok:
		return "", "Invalid client assertion: 'iat' claim must be a NumericDate"
	case present && iat.After(now.Add(AssertionClockSkew)):
		return "", "Invalid client assertion: 'iat' claim must not be in the future"
	case present && exp.Sub(iat) > MaxAssertionLifetime:
		return "", "Invalid client assertion: 'exp' claim must specify a time that is no more than 5 minutes after 'iat'"
	}
	nbf, present, ok := numericDate(claims.Nbf)
	switch {
	case !ok:
		return "", "Invalid client assertion: 'nbf' claim must be a NumericDate"
	case present && nbf.After(now.Add(AssertionClockSkew)):
		return "", "Invalid client assertion: the assertion is not valid yet ('nbf')"
	}
	switch {
	case claims.Jti == nil || *claims.Jti == "":
		return "", "Invalid client assertion: 'jti' claim is required"
	case len(*claims.Jti) > maxAssertionClaim:
		return "", "Invalid client assertion: 'jti' claim must be at most 64 characters"
	}

	// One-time use: remember the jti until the assertion expires.
	for k, until := range s.usedAssertions {
		if !now.Before(until) {
			delete(s.usedAssertions, k)
		}
	}
	key := clientID + "\x00" + *claims.Jti
	if _, used := s.usedAssertions[key]; used {
		return "", "Invalid client assertion: the assertion has already been used ('jti' replayed)"
	}
	s.usedAssertions[key] = exp
	return clientID, ""
}

// algHash returns the hash of a credential algorithm and whether it is PSS.
func algHash(alg string) (crypto.Hash, func() hash.Hash, bool, error) {
	switch alg {
	case "RS256":
		return crypto.SHA256, sha256.New, false, nil
	case "RS384":
		return crypto.SHA384, sha512.New384, false, nil
	case "PS256":
		return crypto.SHA256, sha256.New, true, nil
	}
	return 0, nil, false, fmt.Errorf("unsupported algorithm %q (want RS256, RS384 or PS256)", alg)
}

// verifyRSA checks a JWS signature: RSASSA-PKCS1-v1_5 for RS256 and RS384,
// RSASSA-PSS with a salt as long as the hash for PS256 (RFC 7518).
func verifyRSA(key *rsa.PublicKey, alg, signingInput string, sig []byte) error {
	h, newHash, pss, err := algHash(alg)
	if err != nil {
		return err
	}
	d := newHash()
	d.Write([]byte(signingInput))
	sum := d.Sum(nil)
	if pss {
		return rsa.VerifyPSS(key, h, sum, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return rsa.VerifyPKCS1v15(key, h, sum, sig)
}

// SignJWT signs header and claims with key, by the algorithm header["alg"]
// names (RS256, RS384 or PS256), and returns the compact JWS. It lets tests
// build any client assertion, including malformed ones; header["typ"] is not
// added.
func SignJWT(key *rsa.PrivateKey, header, claims map[string]any) (string, error) {
	alg, _ := header["alg"].(string)
	h, newHash, pss, err := algHash(alg)
	if err != nil {
		return "", err
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	d := newHash()
	d.Write([]byte(signingInput))
	var sig []byte
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, key, h, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, h, d.Sum(nil))
	}
	if err != nil {
		return "", err
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// SignAssertion returns a private_key_jwt client assertion for clientID, as
// Auth0 documents it: header alg (and kid, if not empty), claims iss = sub =
// clientID, aud = audience (for the emulator at host H:
// "https://H/"), iat = now, exp = now + ttl and a random jti.
func SignAssertion(key *rsa.PrivateKey, alg, kid, clientID, audience string, now time.Time, ttl time.Duration) (string, error) {
	if key == nil {
		return "", errors.New("emulator: SignAssertion needs a key")
	}
	header := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	return SignJWT(key, header, map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	})
}

// KeyID returns the kid Auth0 generates for a credential of key: its RFC 7638
// JWK SHA-256 thumbprint.
func KeyID(key *rsa.PublicKey) string {
	return jwkThumbprint(key)
}
