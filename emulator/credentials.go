package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file implements the client credentials of private_key_jwt: the
// /api/v2/clients/{id}/credentials endpoints, the credentials' storage, and
// the Go-level helpers tests use to inspect and seed them. Attaching
// credentials to a client (PATCH client_authentication_methods) is in
// authmethods.go, authenticating with them (client assertions at
// /oauth/token) in assertion.go.

// Management API scopes of the credentials endpoints.
const (
	scopeCreateClientCred = "create:client_credentials"
	scopeDeleteClientCred = "delete:client_credentials"
)

// MaxCredentials is how many credentials Auth0 stores per application at one
// time, attached to private_key_jwt or not ("The current application storage
// limit is two credentials at one time", Auth0 guide "Rotate Credentials").
// It is also the most credentials private_key_jwt can have attached.
const MaxCredentials = 2

// MinRSABits is the smallest RSA modulus the credentials endpoint accepts.
const MinRSABits = 2048

// Credential algorithms Auth0 supports ("RS256, RS384 and PS256. If not
// specified, the algorithm will default to RS256").
var credentialAlgs = []string{"RS256", "RS384", "PS256"}

// kidPattern is the format of a kid chosen by the caller (Management API
// reference, "Create a client credential": [0-9a-zA-Z-_]{10,64}).
var kidPattern = regexp.MustCompile(`^[0-9a-zA-Z_-]{10,64}$`)

// maxCredentialName is the longest credential name (Management API
// reference: max length 128).
const maxCredentialName = 128

// credential is a stored client credential (credential_type public_key).
type credential struct {
	id        string
	name      string
	kid       string
	alg       string
	key       *rsa.PublicKey
	thumb     string // RFC 7638 JWK SHA-256 thumbprint, whatever the kid
	createdAt time.Time
	updatedAt time.Time
	expiresAt time.Time // zero: never expires
}

// expiredAt reports whether the credential has expired at now.
func (c *credential) expiredAt(now time.Time) bool {
	return !c.expiresAt.IsZero() && !now.Before(c.expiresAt)
}

// auth0Time formats a time the way Auth0 does in credential objects
// ("2023-04-18T13:44:27.616Z").
func auth0Time(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// render returns the credential's JSON object. Auth0 leaves expires_at out of
// a creation answer when none was set, and reports it as null everywhere else
// (go-auth0 recordings TestClient_CreateCredential, TestClient_GetCredentials,
// TestClient_ListCredentials). pem is never returned.
func (c *credential) render(nullExpiry bool) map[string]any {
	out := map[string]any{
		"id":              c.id,
		"name":            c.name,
		"credential_type": "public_key",
		"kid":             c.kid,
		"alg":             c.alg,
		"created_at":      auth0Time(c.createdAt),
		"updated_at":      auth0Time(c.updatedAt),
	}
	switch {
	case !c.expiresAt.IsZero():
		out["expires_at"] = auth0Time(c.expiresAt)
	case nullExpiry:
		out["expires_at"] = nil
	}
	return out
}

// CredentialInfo describes a stored client credential.
type CredentialInfo struct {
	ID        string
	Name      string
	KeyID     string // the kid assertions name in their header
	Type      string // always "public_key"
	Algorithm string // RS256, RS384 or PS256
	PublicKey *rsa.PublicKey
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time // zero: never expires
}

func (c *credential) info() CredentialInfo {
	return CredentialInfo{
		ID: c.id, Name: c.name, KeyID: c.kid, Type: "public_key", Algorithm: c.alg,
		PublicKey: c.key, CreatedAt: c.createdAt, UpdatedAt: c.updatedAt, ExpiresAt: c.expiresAt,
	}
}

// CredentialSpec is a credential to add with AddCredential. Exactly one of
// PEM and PublicKey must be set.
type CredentialSpec struct {
	Name      string
	PEM       string         // PKIX or PKCS #1 RSA public key, or X.509 certificate
	PublicKey *rsa.PublicKey // alternatively, the key itself
	Algorithm string         // default RS256
	KeyID     string         // default: the RFC 7638 thumbprint
	ExpiresAt time.Time      // zero: never
}

// Credentials returns the credentials stored for a client, oldest first, and
// the IDs of those attached to its private_key_jwt method (none while the
// client authenticates with its secret). ok is false for an unknown client.
func (s *Server) Credentials(clientID string) (stored []CredentialInfo, attached []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return nil, nil, false
	}
	for _, c := range rec.creds {
		stored = append(stored, c.info())
	}
	return stored, slices.Clone(rec.attached), true
}

// UsesPrivateKeyJWT reports whether a client authenticates with
// private_key_jwt (credentials attached to client_authentication_methods)
// rather than with its secret. It reports the current configuration, not
// what a token request sees while a change propagates.
func (s *Server) UsesPrivateKeyJWT(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	return ok && len(rec.attached) > 0
}

// AddCredential stores a credential for a client, as POST
// /api/v2/clients/{id}/credentials does and with the same rules (algorithm,
// key size, expiry in the future, at most MaxCredentials, no key or kid
// twice), but without a request: for setting up tests. It is not counted in
// Stats.
func (s *Server) AddCredential(clientID string, spec CredentialSpec) (CredentialInfo, error) {
	key := spec.PublicKey
	switch {
	case key != nil && spec.PEM != "":
		return CredentialInfo{}, errors.New("emulator: set PEM or PublicKey, not both")
	case key == nil:
		k, _, err := parseCredentialPEM(spec.PEM)
		if err != nil {
			return CredentialInfo{}, err
		}
		key = k
	case key.N.BitLen() < MinRSABits:
		return CredentialInfo{}, fmt.Errorf("RSA key of %d bits, the minimum is %d", key.N.BitLen(), MinRSABits)
	}
	alg := spec.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	if !slices.Contains(credentialAlgs, alg) {
		return CredentialInfo{}, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if spec.KeyID != "" && !kidPattern.MatchString(spec.KeyID) {
		return CredentialInfo{}, fmt.Errorf("kid %q does not match %s", spec.KeyID, kidPattern)
	}
	now := s.now()
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return CredentialInfo{}, errors.New("expires_at must be in the future")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return CredentialInfo{}, fmt.Errorf("emulator: unknown client %q", clientID)
	}
	c, apiErr := s.storeCredentialLocked(rec, spec.Name, alg, spec.KeyID, key, spec.ExpiresAt, now)
	if apiErr != nil {
		return CredentialInfo{}, errors.New(apiErr.Message)
	}
	return c.info(), nil
}

// storeCredentialLocked adds a credential to rec after the checks that
// depend on what rec already stores. s.mu must be held.
func (s *Server) storeCredentialLocked(rec *clientRecord, name, alg, kid string, key *rsa.PublicKey, expiresAt, now time.Time) (*credential, *apiError) {
	thumb := jwkThumbprint(key)
	if kid == "" {
		kid = thumb
	}
	for _, c := range rec.creds {
		if c.thumb == thumb {
			return nil, newAPIError(http.StatusConflict, "A credential with the same public key already exists for this client", "duplicate_credential")
		}
		if c.kid == kid {
			return nil, newAPIError(http.StatusConflict, "A credential with kid "+strconv.Quote(kid)+" already exists for this client", "duplicate_credential")
		}
	}
	if len(rec.creds) >= MaxCredentials {
		return nil, newAPIError(http.StatusBadRequest,
			"The client already has the maximum of "+strconv.Itoa(MaxCredentials)+" credentials: delete an unused credential before creating a new one",
			"too_many_credentials")
	}
	now = now.Truncate(time.Millisecond)
	c := &credential{
		id: randomCredentialID(), name: name, kid: kid, alg: alg, key: key, thumb: thumb,
		createdAt: now, updatedAt: now,
	}
	if !expiresAt.IsZero() {
		c.expiresAt = expiresAt.Truncate(time.Millisecond)
	}
	rec.creds = append(rec.creds, c)
	return c, nil
}

func newAPIError(status int, message, code string) *apiError {
	return &apiError{StatusCode: status, Error: http.StatusText(status), Message: message, ErrorCode: code}
}

// findCredential returns rec's credential with the given id, or nil.
func (rec *clientRecord) findCredential(id string) *credential {
	for _, c := range rec.creds {
		if c.id == id {
			return c
		}
	}
	return nil
}

// parseCredentialPEM reads the pem of a public_key credential: a PKIX
// ("PUBLIC KEY") or PKCS #1 ("RSA PUBLIC KEY") RSA public key, or an X.509
// certificate of one (Management API reference: "PEM-formatted public key
// (SPKI and PKCS1) or X509 certificate"). The key must have at least
// MinRSABits bits. The certificate, if it was one, is returned too.
func parseCredentialPEM(s string) (*rsa.PublicKey, *x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, nil, errors.New("pem is not PEM-encoded")
	}
	var (
		pub  any
		cert *x509.Certificate
		err  error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, nil, fmt.Errorf("pem holds a %q block, not a public key or certificate", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("invalid %s: %v", strings.ToLower(block.Type), err)
	}
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, nil, errors.New("pem does not hold an RSA public key")
	}
	if n := key.N.BitLen(); n < MinRSABits {
		return nil, nil, fmt.Errorf("the RSA key has %d bits; at least %d are required", n, MinRSABits)
	}
	return key, cert, nil
}

// jwkThumbprint is the RFC 7638 JWK SHA-256 thumbprint of an RSA public key,
// base64url without padding: the kid Auth0 generates for a credential (it
// matches the kid of every key in go-auth0's credential recordings).
func jwkThumbprint(key *rsa.PublicKey) string {
	e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())
	n := base64.RawURLEncoding.EncodeToString(key.N.Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomCredentialID returns "cred_" and 22 random alphanumerics, the form of
// Auth0's credential IDs.
func randomCredentialID() string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 22)
	buf := make([]byte, 32)
	for len(out) < 22 {
		if _, err := rand.Read(buf); err != nil {
			panic("emulator: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if c < 62*4 && len(out) < 22 {
				out = append(out, alnum[c%62])
			}
		}
	}
	return "cred_" + string(out)
}

// credentialProperties are the properties POST .../credentials accepts
// (Auth0's PostClientCredentialRequestContent).
var credentialProperties = setOf("credential_type", "name", "subject_dn", "pem", "alg",
	"parse_expiry_from_cert", "expires_at", "kid")

// credentialDescriptions are the schema descriptions of credential
// properties, appended to payload validation messages.
var credentialDescriptions = map[string]string{
	"credential_type":        "Credential type. Supported types: public_key.",
	"name":                   "Friendly name for a credential.",
	"pem":                    "PEM-formatted public key (SPKI and PKCS1) or X509 certificate. Must be JSON escaped.",
	"alg":                    "Algorithm which will be used with the credential. Supported algorithms: RS256,RS384,PS256",
	"parse_expiry_from_cert": "Parse expiry from x509 certificate. If true, attempts to parse the expiry date from the provided PEM.",
	"expires_at":             "The ISO 8601 formatted date representing the expiration of the credential.",
	"kid":                    "Optional kid (Key ID), used to uniquely identify the credential.",
}

// credentialPayloadError writes Auth0's 400 for a credentials body that
// fails schema validation.
func credentialPayloadError(w http.ResponseWriter, problem, property string) {
	msg := "Payload validation error: '" + problem + "'"
	if property != "" {
		msg += " on property " + property + " (" + credentialDescriptions[property] + ")"
	}
	writeAPIError(w, http.StatusBadRequest, msg+".", "invalid_body")
}

// readJSONObject reads a request body that must be a JSON object and writes
// Auth0's 400 if it is not.
func readJSONObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload", "")
		return nil, false
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload JSON format", "")
		return nil, false
	}
	if t := jsonType(body); t != "object" {
		payloadError(w, "Expected type object but found type "+t, "")
		return nil, false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload JSON format", "")
		return nil, false
	}
	return obj, true
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseExpiresAt reads an expires_at value: an ISO 8601 date-time string.
func parseExpiresAt(raw json.RawMessage) (time.Time, string) {
	if t := jsonType(raw); t != "string" {
		return time.Time{}, "Expected type string but found type " + t
	}
	var v string
	_ = json.Unmarshal(raw, &v)
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, "Object didn't pass validation for format date-time: " + v
	}
	return t, ""
}

// createCredential implements POST /api/v2/clients/{id}/credentials.
func (s *Server) createCredential(w http.ResponseWriter, r *http.Request, scopes []string, clientID string) {
	if !requireScope(w, scopes, scopeCreateClientCred) {
		return
	}
	body, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	for _, k := range sortedKeys(body) {
		if !credentialProperties[k] {
			credentialPayloadError(w, "Additional properties not allowed: "+k, "")
			return
		}
	}
	str := func(key string) (string, bool, bool) {
		raw, present := body[key]
		if !present {
			return "", false, true
		}
		if t := jsonType(raw); t != "string" {
			credentialPayloadError(w, "Expected type string but found type "+t, key)
			return "", true, false
		}
		var v string
		_ = json.Unmarshal(raw, &v)
		return v, true, true
	}

	credType, present, ok := str("credential_type")
	switch {
	case !ok:
		return
	case !present:
		credentialPayloadError(w, "Missing required property: credential_type", "")
		return
	case credType == "x509_cert" || credType == "cert_subject_dn":
		writeAPIError(w, http.StatusBadRequest,
			"credential_type "+credType+" is for mTLS client authentication, which the emulator does not offer; use public_key", "invalid_body")
		return
	case credType != "public_key":
		credentialPayloadError(w, "No enum match for: "+strconv.Quote(credType), "credential_type")
		return
	}
	if _, present := body["subject_dn"]; present {
		writeAPIError(w, http.StatusBadRequest, "subject_dn applies only to cert_subject_dn credentials", "invalid_body")
		return
	}
	name, _, ok := str("name")
	if !ok {
		return
	}
	if n := utf8.RuneCountInString(name); n > maxCredentialName {
		credentialPayloadError(w, "String is too long ("+strconv.Itoa(n)+" chars), maximum "+strconv.Itoa(maxCredentialName), "name")
		return
	}
	pemText, present, ok := str("pem")
	switch {
	case !ok:
		return
	case !present:
		credentialPayloadError(w, "Missing required property: pem", "")
		return
	}
	alg, present, ok := str("alg")
	if !ok {
		return
	}
	if !present {
		alg = "RS256"
	} else if !slices.Contains(credentialAlgs, alg) {
		credentialPayloadError(w, "No enum match for: "+strconv.Quote(alg), "alg")
		return
	}
	kid, present, ok := str("kid")
	if !ok {
		return
	}
	if present && !kidPattern.MatchString(kid) {
		credentialPayloadError(w, "String does not match pattern: ^[0-9a-zA-Z-_]{10,64}$", "kid")
		return
	}
	parseExpiry := false
	if raw, present := body["parse_expiry_from_cert"]; present {
		if t := jsonType(raw); t != "boolean" {
			credentialPayloadError(w, "Expected type boolean but found type "+t, "parse_expiry_from_cert")
			return
		}
		_ = json.Unmarshal(raw, &parseExpiry)
	}
	var expiresAt time.Time
	if raw, present := body["expires_at"]; present && jsonType(raw) != "null" {
		t, problem := parseExpiresAt(raw)
		if problem != "" {
			credentialPayloadError(w, problem, "expires_at")
			return
		}
		expiresAt = t
	}

	key, cert, err := parseCredentialPEM(pemText)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid credential: "+err.Error(), "invalid_body")
		return
	}
	if parseExpiry {
		if cert == nil {
			writeAPIError(w, http.StatusBadRequest,
				"parse_expiry_from_cert needs an X.509 certificate in pem, not a bare public key", "invalid_body")
			return
		}
		if expiresAt.IsZero() {
			expiresAt = cert.NotAfter
		}
	}
	now := s.now()
	if !expiresAt.IsZero() && !expiresAt.After(now) {
		writeAPIError(w, http.StatusBadRequest, "expires_at must be a date in the future", "invalid_body")
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[clientID]
	var c *credential
	var apiErr *apiError
	if ok {
		c, apiErr = s.storeCredentialLocked(rec, name, alg, kid, key, expiresAt, now)
		if apiErr == nil {
			s.stats.CredentialsCreated[clientID]++
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
		return
	case apiErr != nil:
		writeJSON(w, apiErr.StatusCode, apiErr)
		return
	}
	if s.runFault(AfterApply, w, r, clientID, endpointManagement) {
		return
	}
	writeJSON(w, http.StatusCreated, c.render(false))
}

func writeNoCredential(w http.ResponseWriter) {
	writeAPIError(w, http.StatusNotFound, "The credential does not exist", "inexistent_credential")
}

// listCredentials implements GET /api/v2/clients/{id}/credentials: a plain
// array (go-auth0 sends include_totals and per_page, which Auth0 ignores
// here; recording TestClient_ListCredentials).
func (s *Server) listCredentials(w http.ResponseWriter, scopes []string, clientID string) {
	if !requireScope(w, scopes, scopeReadClientCreds) {
		return
	}
	s.mu.Lock()
	rec, ok := s.clients[clientID]
	out := []map[string]any{}
	if ok {
		for _, c := range rec.creds {
			out = append(out, c.render(true))
		}
	}
	s.mu.Unlock()
	if !ok {
		writeNoClient(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// getCredential implements GET /api/v2/clients/{id}/credentials/{cred}.
func (s *Server) getCredential(w http.ResponseWriter, scopes []string, clientID, credID string) {
	if !requireScope(w, scopes, scopeReadClientCreds) {
		return
	}
	s.mu.Lock()
	rec, ok := s.clients[clientID]
	var obj map[string]any
	if ok {
		if c := rec.findCredential(credID); c != nil {
			obj = c.render(true)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
	case obj == nil:
		writeNoCredential(w)
	default:
		writeJSON(w, http.StatusOK, obj)
	}
}

// patchCredential implements PATCH /api/v2/clients/{id}/credentials/{cred}:
// only expires_at may change ("The API only accepts the expires_at property",
// go-auth0 UpdateCredential), to a date in the future; it cannot be unset
// ("It is not possible to set this to never expire after it has been set",
// terraform-provider-auth0).
func (s *Server) patchCredential(w http.ResponseWriter, r *http.Request, scopes []string, clientID, credID string) {
	if !requireScope(w, scopes, scopeUpdateClientCred) {
		return
	}
	body, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	for _, k := range sortedKeys(body) {
		if k != "expires_at" {
			credentialPayloadError(w, "Additional properties not allowed: "+k, "")
			return
		}
	}
	raw, present := body["expires_at"]
	if !present {
		credentialPayloadError(w, "Too few properties defined (0), minimum 1", "")
		return
	}
	expiresAt, problem := parseExpiresAt(raw)
	if problem != "" {
		credentialPayloadError(w, problem, "expires_at")
		return
	}
	now := s.now()
	if !expiresAt.After(now) {
		writeAPIError(w, http.StatusBadRequest, "expires_at must be a date in the future", "invalid_body")
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[clientID]
	var obj map[string]any
	if ok {
		if c := rec.findCredential(credID); c != nil {
			c.expiresAt = expiresAt.Truncate(time.Millisecond)
			c.updatedAt = now.Truncate(time.Millisecond)
			obj = c.render(true)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
		return
	case obj == nil:
		writeNoCredential(w)
		return
	}
	if s.runFault(AfterApply, w, r, clientID, endpointManagement) {
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// deleteCredential implements DELETE /api/v2/clients/{id}/credentials/{cred}.
// A credential still attached to the client's private_key_jwt method is not
// deleted: it has to be detached first (the order of Auth0's guide "Rotate
// Credentials": disable, then delete).
func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request, scopes []string, clientID, credID string) {
	if !requireScope(w, scopes, scopeDeleteClientCred) {
		return
	}
	s.mu.Lock()
	rec, ok := s.clients[clientID]
	found, attached := false, false
	if ok {
		if c := rec.findCredential(credID); c != nil {
			found = true
			attached = slices.Contains(rec.attached, credID)
			if !attached {
				rec.creds = slices.DeleteFunc(rec.creds, func(x *credential) bool { return x == c })
				s.stats.CredentialsDeleted[clientID]++
			}
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
		return
	case !found:
		writeNoCredential(w)
		return
	case attached:
		writeAPIError(w, http.StatusBadRequest,
			"The credential is enabled for the client's private_key_jwt authentication method: detach it (PATCH the client's client_authentication_methods) before deleting it",
			"credential_in_use")
		return
	}
	if s.runFault(AfterApply, w, r, clientID, endpointManagement) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNoContent)
}
