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

// This file implements client credentials: public_key credentials for
// private_key_jwt and x509_cert credentials for self_signed_tls_client_auth;
// the /api/v2/clients/{id}/credentials endpoints, the credentials' storage,
// and the Go-level helpers tests use to inspect and seed them. Attaching
// credentials to a client (PATCH client_authentication_methods) is in
// authmethods.go, authenticating with them in assertion.go (client
// assertions) and mtls.go (client certificates forwarded by the edge).

// Credential types the emulator stores.
const (
	// CredentialTypePublicKey is an RSA public key, for private_key_jwt.
	CredentialTypePublicKey = "public_key"
	// CredentialTypeX509Cert is an X.509 certificate (self-signed or not),
	// for self_signed_tls_client_auth.
	CredentialTypeX509Cert = "x509_cert"
)

// Management API scopes of the credentials endpoints.
const (
	scopeCreateClientCred = "create:client_credentials"
	scopeDeleteClientCred = "delete:client_credentials"
)

// MaxCredentials is how many credentials Auth0 stores per application at one
// time, of any type, attached or not ("The current application storage
// limit is two credentials at one time", Auth0 guide "Rotate Credentials";
// "Auth0 limits customers to two registered certificates", "Configure mTLS
// for a client"). It is also the most credentials a method can have
// attached.
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

// credential is a stored client credential.
type credential struct {
	id    string
	name  string
	ctype string // CredentialTypePublicKey or CredentialTypeX509Cert
	// public_key
	kid   string
	alg   string
	key   *rsa.PublicKey
	thumb string // RFC 7638 JWK SHA-256 thumbprint, whatever the kid
	// x509_cert
	cert      *x509.Certificate
	certThumb string // thumbprint_sha256: SHA-256 of the DER, base64url

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
// TestClient_ListCredentials). pem is never returned. An x509_cert
// credential has thumbprint_sha256 instead of kid and alg, and always an
// expiry (go-auth0 recording TestClient_CreateAllCredential/
// Should_create_SelfSignedTLSClientAuth_Credential).
func (c *credential) render(nullExpiry bool) map[string]any {
	out := map[string]any{
		"id":              c.id,
		"name":            c.name,
		"credential_type": c.ctype,
		"created_at":      auth0Time(c.createdAt),
		"updated_at":      auth0Time(c.updatedAt),
	}
	if c.ctype == CredentialTypeX509Cert {
		out["thumbprint_sha256"] = c.certThumb
	} else {
		out["kid"] = c.kid
		out["alg"] = c.alg
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
	ID   string
	Name string
	Type string // CredentialTypePublicKey or CredentialTypeX509Cert
	// public_key credentials
	KeyID     string // the kid assertions name in their header
	Algorithm string // RS256, RS384 or PS256
	// PublicKey is the RSA key of a public_key credential, or of an
	// x509_cert credential whose certificate holds one (nil otherwise).
	PublicKey *rsa.PublicKey
	// x509_cert credentials
	Certificate      *x509.Certificate
	ThumbprintSHA256 string // base64url (no padding) SHA-256 of the certificate's DER

	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time // zero: never expires
}

func (c *credential) info() CredentialInfo {
	info := CredentialInfo{
		ID: c.id, Name: c.name, Type: c.ctype, KeyID: c.kid, Algorithm: c.alg,
		PublicKey: c.key, CreatedAt: c.createdAt, UpdatedAt: c.updatedAt, ExpiresAt: c.expiresAt,
	}
	if c.cert != nil {
		info.Certificate = c.cert
		info.ThumbprintSHA256 = c.certThumb
		info.PublicKey, _ = c.cert.PublicKey.(*rsa.PublicKey)
	}
	return info
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
// the IDs of those attached to its private_key_jwt or
// self_signed_tls_client_auth method, whichever it is on (none while the
// client authenticates with its secret; AuthMethod tells which). ok is
// false for an unknown client.
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
	return stored, slices.Clone(rec.auth.creds), true
}

// UsesPrivateKeyJWT reports whether a client authenticates with
// private_key_jwt (credentials attached to client_authentication_methods)
// rather than with its secret. It reports the current configuration, not
// what a token request sees while a change propagates.
func (s *Server) UsesPrivateKeyJWT(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	return ok && rec.auth.has(MethodPrivateKeyJWT)
}

// UsesSelfSignedTLS reports whether a client authenticates with
// self_signed_tls_client_auth (x509_cert credentials attached to
// client_authentication_methods) rather than with its secret or
// private_key_jwt. It reports the current configuration, not what a token
// request sees while a change propagates.
func (s *Server) UsesSelfSignedTLS(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	return ok && rec.auth.has(MethodSelfSignedTLS)
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
	c, apiErr := s.storeCredentialLocked(rec, publicKeyCredential(spec.Name, alg, spec.KeyID, key, spec.ExpiresAt), now)
	if apiErr != nil {
		return CredentialInfo{}, errors.New(apiErr.Message)
	}
	return c.info(), nil
}

// CertificateSpec is an x509_cert credential to add with
// AddCertificateCredential. Exactly one of PEM and Certificate must be set.
type CertificateSpec struct {
	Name        string
	PEM         string            // one PEM "CERTIFICATE" block
	Certificate *x509.Certificate // alternatively, the certificate itself
	ExpiresAt   time.Time         // zero: the certificate's NotAfter
}

// AddCertificateCredential stores an x509_cert credential for a client, as
// POST /api/v2/clients/{id}/credentials does and with the same rules (a
// certificate within its validity period at the emulator's clock, expiry in
// the future, at most MaxCredentials, no certificate twice), but without a
// request: for setting up tests. It is not counted in Stats.
func (s *Server) AddCertificateCredential(clientID string, spec CertificateSpec) (CredentialInfo, error) {
	cert := spec.Certificate
	switch {
	case cert != nil && spec.PEM != "":
		return CredentialInfo{}, errors.New("emulator: set PEM or Certificate, not both")
	case cert == nil:
		c, err := parseCertificatePEM(spec.PEM)
		if err != nil {
			return CredentialInfo{}, err
		}
		cert = c
	}
	now := s.now()
	if err := certificateCurrent(cert, now); err != nil {
		return CredentialInfo{}, err
	}
	expiresAt := spec.ExpiresAt
	if expiresAt.IsZero() {
		expiresAt = cert.NotAfter
	}
	if !expiresAt.After(now) {
		return CredentialInfo{}, errors.New("expires_at must be in the future")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return CredentialInfo{}, fmt.Errorf("emulator: unknown client %q", clientID)
	}
	c, apiErr := s.storeCredentialLocked(rec, certificateCredential(spec.Name, cert, expiresAt), now)
	if apiErr != nil {
		return CredentialInfo{}, errors.New(apiErr.Message)
	}
	return c.info(), nil
}

// publicKeyCredential returns an unstored public_key credential; kid ""
// means the key's thumbprint.
func publicKeyCredential(name, alg, kid string, key *rsa.PublicKey, expiresAt time.Time) *credential {
	thumb := jwkThumbprint(key)
	if kid == "" {
		kid = thumb
	}
	return &credential{ctype: CredentialTypePublicKey, name: name, kid: kid, alg: alg, key: key, thumb: thumb, expiresAt: expiresAt}
}

// certificateCredential returns an unstored x509_cert credential.
func certificateCredential(name string, cert *x509.Certificate, expiresAt time.Time) *credential {
	return &credential{ctype: CredentialTypeX509Cert, name: name, cert: cert, certThumb: CertificateThumbprint(cert), expiresAt: expiresAt}
}

// storeCredentialLocked adds c, not stored yet, to rec after the checks
// that depend on what rec already stores, giving it its id and dates. s.mu
// must be held.
func (s *Server) storeCredentialLocked(rec *clientRecord, c *credential, now time.Time) (*credential, *apiError) {
	for _, o := range rec.creds {
		if o.ctype != c.ctype {
			continue
		}
		switch {
		case c.ctype == CredentialTypeX509Cert && o.certThumb == c.certThumb:
			return nil, newAPIError(http.StatusConflict, "A credential with the same certificate already exists for this client", "duplicate_credential")
		case c.ctype == CredentialTypePublicKey && o.thumb == c.thumb:
			return nil, newAPIError(http.StatusConflict, "A credential with the same public key already exists for this client", "duplicate_credential")
		case c.ctype == CredentialTypePublicKey && o.kid == c.kid:
			return nil, newAPIError(http.StatusConflict, "A credential with kid "+strconv.Quote(c.kid)+" already exists for this client", "duplicate_credential")
		}
	}
	if len(rec.creds) >= MaxCredentials {
		return nil, newAPIError(http.StatusBadRequest,
			"The client already has the maximum of "+strconv.Itoa(MaxCredentials)+" credentials: delete an unused credential before creating a new one",
			"too_many_credentials")
	}
	now = now.Truncate(time.Millisecond)
	c.id = randomCredentialID()
	c.createdAt, c.updatedAt = now, now
	if !c.expiresAt.IsZero() {
		c.expiresAt = c.expiresAt.Truncate(time.Millisecond)
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

// parseCertificatePEM reads the pem of an x509_cert credential: exactly one
// PEM "CERTIFICATE" block holding an X.509 certificate, of any key type and
// size, self-signed or not ("Configure mTLS for a client"; go-auth0's
// recorded x509_cert credential is a 1024-bit RSA certificate issued by a
// test CA). Keys, private or public, are refused with a hint.
func parseCertificatePEM(s string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("pem is not PEM-encoded")
	}
	switch {
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, errors.New("pem holds a private key: upload only the certificate, and keep the key secret")
	case strings.Contains(block.Type, "PUBLIC KEY"):
		return nil, errors.New("pem holds a bare public key: x509_cert credentials need an X.509 certificate (public keys are public_key credentials)")
	case block.Type != "CERTIFICATE":
		return nil, fmt.Errorf("pem holds a %q block, not a certificate", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("pem must hold exactly one certificate, not a chain")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("invalid certificate: %v", err)
	}
	return cert, nil
}

// certificateCurrent checks that cert is within its validity period at now.
func certificateCurrent(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Errorf("the certificate is not valid before %s", auth0Time(cert.NotBefore))
	case !now.Before(cert.NotAfter):
		return fmt.Errorf("the certificate expired at %s", auth0Time(cert.NotAfter))
	}
	return nil
}

// CertificateThumbprint returns the thumbprint_sha256 Auth0 reports for an
// x509_cert credential: the SHA-256 digest of the certificate's DER,
// base64url without padding (it matches the recorded answer for go-auth0's
// test certificate).
func CertificateThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
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
	"credential_type":        "Credential type. Supported types: public_key, x509_cert.",
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
	case credType == "cert_subject_dn":
		writeAPIError(w, http.StatusBadRequest,
			"credential_type cert_subject_dn is for tls_client_auth (CA-signed certificates), which the emulator does not offer; use x509_cert for self_signed_tls_client_auth", "invalid_body")
		return
	case credType != CredentialTypePublicKey && credType != CredentialTypeX509Cert:
		credentialPayloadError(w, "No enum match for: "+strconv.Quote(credType), "credential_type")
		return
	}
	isCert := credType == CredentialTypeX509Cert
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
	if isCert {
		// A certificate credential has no signing algorithm or key id:
		// Auth0's answer for one holds neither.
		for _, k := range []string{"alg", "kid"} {
			if _, present := body[k]; present {
				writeAPIError(w, http.StatusBadRequest, k+" applies only to public_key credentials, not x509_cert", "invalid_body")
				return
			}
		}
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

	now := s.now()
	var proto *credential
	if isCert {
		// An x509_cert credential expires with its certificate unless
		// expires_at says otherwise, parse_expiry_from_cert or not: Auth0
		// answered the NotAfter of go-auth0's test certificate
		// (9999-12-31T23:59:59Z) to a request with neither.
		cert, err := parseCertificatePEM(pemText)
		if err == nil {
			err = certificateCurrent(cert, now)
		}
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "Invalid credential: "+err.Error(), "invalid_body")
			return
		}
		if expiresAt.IsZero() {
			expiresAt = cert.NotAfter
		}
		proto = certificateCredential(name, cert, expiresAt)
	} else {
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
		proto = publicKeyCredential(name, alg, kid, key, expiresAt)
	}
	if !expiresAt.IsZero() && !expiresAt.After(now) {
		writeAPIError(w, http.StatusBadRequest, "expires_at must be a date in the future", "invalid_body")
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[clientID]
	var c *credential
	var apiErr *apiError
	if ok {
		c, apiErr = s.storeCredentialLocked(rec, proto, now)
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
// A credential still attached to the client's private_key_jwt or
// self_signed_tls_client_auth method is not deleted: it has to be detached
// first (the order of Auth0's guide "Rotate Credentials": disable, then
// delete).
func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request, scopes []string, clientID, credID string) {
	if !requireScope(w, scopes, scopeDeleteClientCred) {
		return
	}
	s.mu.Lock()
	rec, ok := s.clients[clientID]
	found, attached, method := false, false, ""
	if ok {
		if c := rec.findCredential(credID); c != nil {
			found = true
			attached, method = slices.Contains(rec.auth.creds, credID), rec.auth.method
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
			"The credential is enabled for the client's "+method+" authentication method: detach it (PATCH the client's client_authentication_methods) before deleting it",
			"credential_in_use")
		return
	}
	if s.runFault(AfterApply, w, r, clientID, endpointManagement) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNoContent)
}

// RemoveCredential detaches a client's credential if it is attached and deletes it, as
// someone does by hand in the Auth0 Dashboard (Applications > Credentials), without a
// request: for tests of what Vault finds changed behind its back. The credentials left
// attached stay as they are, expired or not; detaching the last one is refused (the
// client would fall back to its secret). It is not counted in Stats.
func (s *Server) RemoveCredential(clientID, credentialID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return fmt.Errorf("emulator: unknown client %q", clientID)
	}
	c := rec.findCredential(credentialID)
	if c == nil {
		return fmt.Errorf("emulator: client %q has no credential %q", clientID, credentialID)
	}
	if slices.Contains(rec.auth.creds, credentialID) {
		rest := slices.DeleteFunc(slices.Clone(rec.auth.creds), func(id string) bool { return id == credentialID })
		if len(rest) == 0 {
			return fmt.Errorf("emulator: credential %q is the only one attached to client %q", credentialID, clientID)
		}
		s.setAuthLocked(rec, authState{method: rec.auth.method, creds: rest}, false)
	}
	rec.creds = slices.DeleteFunc(rec.creds, func(x *credential) bool { return x == c })
	return nil
}
