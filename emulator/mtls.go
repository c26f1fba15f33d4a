package emulator

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file implements self_signed_tls_client_auth at /oauth/token, and an
// mTLS edge for tests.
//
// Auth0 never sees the TLS handshake of an mTLS client. The tenant's custom
// domain is served by the customer's own edge (a reverse proxy, typically
// on mtls.<custom domain>), which requests a client certificate, completes
// the handshake, and forwards the request to Auth0 with three headers
// (Auth0 "Set up the Customer Edge", "Forward the request"):
//
//   - cname-api-key: the custom domain's secret API key, which proves that
//     the request comes from the edge (Options.CNAMEAPIKey);
//   - client-certificate: the client's leaf certificate, PEM, URL-component
//     encoded, at most 4096 bytes;
//   - client-certificate-ca-verified: whether the edge could verify the
//     certificate's chain: SUCCESS, FAILED (nginx's $ssl_client_verify
//     form "FAILED:reason" included) or NONE. A self-signed certificate
//     has no chain, so the edge forwards FAILED, and Auth0 checks the
//     certificate against the client's x509_cert credentials itself.
//
// The Authentication API reference lists the rest: "mTLS, where the
// client_id parameter is required and the client-certificate and
// client-certificate-ca-verified headers are required".

// Headers of a request the customer edge forwards to Auth0.
const (
	HeaderCNAMEAPIKey                 = "cname-api-key"
	HeaderClientCertificate           = "client-certificate"
	HeaderClientCertificateCAVerified = "client-certificate-ca-verified"
)

// MaxClientCertificateHeader is the longest client-certificate header
// value Auth0 accepts, in bytes ("The header value is limited to 4096
// bytes", Auth0 "Set up the Customer Edge").
const MaxClientCertificateHeader = 4096

// forwardedCertificate reads the headers of a token request that carries
// a forwarded client certificate (the client-certificate header is
// present) and returns the certificate, or the status, OAuth error code and
// description of the refusal. byAssertion and basic tell whether the
// request also authenticates otherwise.
func (s *Server) forwardedCertificate(r *http.Request, params map[string]string, byAssertion, basic bool) (*x509.Certificate, int, string, string) {
	// The key first: nothing about a forwarded certificate is considered
	// unless the request provably comes from the tenant's edge.
	want := s.opts.CNAMEAPIKey
	got, present := r.Header.Get(HeaderCNAMEAPIKey), len(r.Header.Values(HeaderCNAMEAPIKey)) > 0
	switch {
	case want == "":
		return nil, http.StatusUnauthorized, "invalid_client",
			"mTLS client authentication is not set up for this tenant: no custom domain accepts forwarded client certificates"
	case !present:
		return nil, http.StatusUnauthorized, "invalid_client",
			"Missing cname-api-key header: a client certificate is accepted only when the custom domain's edge forwards it"
	case subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1:
		return nil, http.StatusUnauthorized, "invalid_client", "Invalid cname-api-key header"
	}
	switch {
	case byAssertion || basic || params["client_secret"] != "":
		return nil, http.StatusBadRequest, "invalid_request",
			"Only one client authentication method may be used: a forwarded client certificate cannot be combined with client_secret, HTTP Basic credentials or client_assertion"
	case params["client_id"] == "":
		return nil, http.StatusBadRequest, "invalid_request", "Missing required parameter: client_id"
	}
	verified := r.Header.Values(HeaderClientCertificateCAVerified)
	switch {
	case len(verified) == 0:
		return nil, http.StatusBadRequest, "invalid_request", "Missing required header: client-certificate-ca-verified"
	case len(verified) > 1:
		return nil, http.StatusBadRequest, "invalid_request", "client-certificate-ca-verified must be sent once"
	case verified[0] == "NONE":
		return nil, http.StatusBadRequest, "invalid_request",
			"client-certificate-ca-verified is NONE: the edge received no client certificate"
	case verified[0] != "SUCCESS" && verified[0] != "FAILED" && !strings.HasPrefix(verified[0], "FAILED:"):
		return nil, http.StatusBadRequest, "invalid_request",
			"Invalid client-certificate-ca-verified header: expected SUCCESS, FAILED or NONE"
	}
	values := r.Header.Values(HeaderClientCertificate)
	if len(values) > 1 {
		return nil, http.StatusBadRequest, "invalid_request", "client-certificate must be sent once"
	}
	value := values[0]
	if n := len(value); n > MaxClientCertificateHeader {
		return nil, http.StatusBadRequest, "invalid_request",
			"client-certificate header of " + strconv.Itoa(n) + " bytes exceeds " + strconv.Itoa(MaxClientCertificateHeader) + ": forward only the client's leaf certificate"
	}
	// PathUnescape, not QueryUnescape: a "+" of the base64 body stays a
	// "+", as decodeURIComponent leaves it.
	decoded, err := url.PathUnescape(value)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid_request", "client-certificate header is not URL-encoded: " + err.Error()
	}
	cert, err := parseCertificatePEM(decoded)
	if err != nil {
		return nil, http.StatusBadRequest, "invalid_request", "client-certificate header does not hold a PEM certificate: " + err.Error()
	}
	return cert, 0, "", ""
}

// verifyCertificateLocked authenticates clientID by a client certificate
// its request forwarded: the client must be on self_signed_tls_client_auth
// (as this request sees it, while a change propagates), the certificate
// within its validity period at now and equal to an attached, unexpired
// x509_cert credential. It returns "" or the error_description of a 401
// invalid_client. s.mu must be held.
func (s *Server) verifyCertificateLocked(clientID string, cert *x509.Certificate, now time.Time) string {
	rec, ok := s.clients[clientID]
	if !ok {
		return "Invalid client certificate: unknown client"
	}
	visible := s.visibleAuthLocked(rec, now)
	if !visible.has(MethodSelfSignedTLS) {
		return "Client is not configured for self_signed_tls_client_auth authentication"
	}
	if err := certificateCurrent(cert, now); err != nil {
		return "Invalid client certificate: " + err.Error()
	}
	thumb := CertificateThumbprint(cert)
	for _, id := range visible.creds {
		c := rec.findCredential(id)
		if c == nil || c.certThumb != thumb {
			continue
		}
		if c.expiredAt(now) {
			return "Invalid client certificate: the credential has expired"
		}
		return ""
	}
	return "Invalid client certificate: it matches no credential enabled for self_signed_tls_client_auth"
}

// EncodeClientCertificate returns the client-certificate header value an
// edge forwards for cert: its PEM, URL-component encoded as JavaScript's
// encodeURIComponent (or jq's @uri) does.
func EncodeClientCertificate(cert *x509.Certificate) string {
	return encodeURIComponent(CertificatePEM(cert))
}

// CertificatePEM returns cert as a PEM "CERTIFICATE" block.
func CertificatePEM(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// encodeURIComponent escapes everything but the characters
// encodeURIComponent leaves alone: A-Z a-z 0-9 - _ . ! ~ * ' ( ).
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// SelfSignedCertificate returns a new self-signed client certificate for
// commonName, valid from notBefore to notAfter, with a fresh ECDSA P-256
// key: a tls.Certificate (Leaf set) to present to an MTLSEdge, whose Leaf
// is what an x509_cert credential registers.
func SelfSignedCertificate(commonName string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// MTLSEdge is a customer edge for tests: an HTTPS server that requires a
// client certificate (any: self-signed certificates cannot chain, so it
// verifies none, as an edge for self_signed_tls_client_auth must not) and
// forwards POST /oauth/token to the emulator with the cname-api-key,
// client-certificate and client-certificate-ca-verified headers set from
// the leaf certificate of the handshake. Headers of those names that the
// client sent are dropped. Other paths get a JSON 404 from the edge.
//
// An application holding a certificate (one issued by the engine, say)
// uses it as it would use Auth0: mTLS with the edge, through Client, and a
// client credentials request with its client_id.
type MTLSEdge struct {
	// URL is the edge's base URL, https://127.0.0.1:port.
	URL string

	srv         *httptest.Server
	target      http.Handler
	key         string
	forwardHost string
	caVerified  string
	// caVerifiedSet: caVerified replaces the edge's own check.
	caVerifiedSet bool

	mu        sync.Mutex
	forwarded int
}

// EdgeOption configures an MTLSEdge.
type EdgeOption func(*MTLSEdge)

// EdgeForwardHost makes the edge forward requests with this Host header
// instead of the one the client sent (the edge's own address), e.g. the
// emulator's address, so that the emulator derives the same Management API
// audience and token issuer as for direct requests.
func EdgeForwardHost(host string) EdgeOption {
	return func(e *MTLSEdge) { e.forwardHost = host }
}

// EdgeCAVerified makes the edge forward this client-certificate-ca-verified
// value ("" to leave the header out) instead of the result of its own check
// ("FAILED:self signed certificate" for a self-signed certificate,
// "FAILED:unable to get local issuer certificate" otherwise), to test how
// the emulator treats other values.
func EdgeCAVerified(value string) EdgeOption {
	return func(e *MTLSEdge) { e.caVerified = value; e.caVerifiedSet = true }
}

// NewMTLSEdge starts an edge forwarding to target (an emulator Server, or
// for one in another process an httputil.ReverseProxy to it) with the
// custom domain API key cnameAPIKey. Close it when done.
func NewMTLSEdge(target http.Handler, cnameAPIKey string, opts ...EdgeOption) *MTLSEdge {
	e := &MTLSEdge{target: target, key: cnameAPIKey}
	for _, o := range opts {
		o(e)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS12}
	e.srv.StartTLS()
	e.URL = e.srv.URL
	return e
}

// Close shuts the edge down.
func (e *MTLSEdge) Close() { e.srv.Close() }

// Certificate returns the edge's server certificate.
func (e *MTLSEdge) Certificate() *x509.Certificate { return e.srv.Certificate() }

// CertPool returns a pool holding the edge's server certificate, for
// clients that are to trust the edge.
func (e *MTLSEdge) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	return pool
}

// Client returns an HTTP client that trusts the edge and presents cert in
// the TLS handshake.
func (e *MTLSEdge) Client(cert tls.Certificate) *http.Client {
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Forwarded returns how many requests the edge has forwarded.
func (e *MTLSEdge) Forwarded() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.forwarded
}

// serve handles a request whose TLS handshake presented a certificate.
func (e *MTLSEdge) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth/token" {
		writeJSON(w, http.StatusNotFound, oauthError{Error: "not_found", Description: "The mTLS edge forwards only /oauth/token"})
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_request", Description: "No client certificate"})
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	out := r.Clone(r.Context())
	for _, h := range []string{HeaderCNAMEAPIKey, HeaderClientCertificate, HeaderClientCertificateCAVerified} {
		out.Header.Del(h)
	}
	out.Header.Set(HeaderCNAMEAPIKey, e.key)
	out.Header.Set(HeaderClientCertificate, EncodeClientCertificate(leaf))
	verified := caVerification(leaf)
	if e.caVerifiedSet {
		verified = e.caVerified
	}
	if verified != "" {
		out.Header.Set(HeaderClientCertificateCAVerified, verified)
	}
	if e.forwardHost != "" {
		out.Host = e.forwardHost
	}
	e.mu.Lock()
	e.forwarded++
	e.mu.Unlock()
	e.target.ServeHTTP(w, out)
}

// caVerification is the client-certificate-ca-verified value of an edge
// that trusts no CA: never SUCCESS, with nginx's reasons.
func caVerification(leaf *x509.Certificate) string {
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return "FAILED:self signed certificate"
	}
	return "FAILED:unable to get local issuer certificate"
}
