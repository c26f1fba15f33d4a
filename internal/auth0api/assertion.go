package auth0api

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Keys and client assertions for private_key_jwt (RFC 7523 client authentication).

const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ManagementAssertionTTL is the lifetime of the assertions the mount signs for its own
// Management API tokens (credential_type=private_key_jwt).
const ManagementAssertionTTL = time.Minute

// AssertionClockSkew is the clock skew Auth0 allows a client assertion's iat and nbf ("a
// clock skew of up to 10 seconds"): an assertion signed on a clock further ahead of
// Auth0's is refused, and one signed on a clock behind expires that much earlier at Auth0.
const AssertionClockSkew = 10 * time.Second

// ClockSkewWarning is the skew between Vault's clock and Auth0's that config/check warns
// of: half of AssertionClockSkew, so that a drifting clock is fixed before Auth0 refuses
// assertions, with room for the check's own one-second resolution.
const ClockSkewWarning = AssertionClockSkew / 2

// Signing algorithms Auth0 accepts for private_key_jwt credentials.
const (
	AlgRS256 = "RS256"
	AlgRS384 = "RS384"
	AlgPS256 = "PS256"
)

var KeyAlgorithms = []string{AlgRS256, AlgRS384, AlgPS256}

// KeyBitSizes are the RSA key sizes a role may ask for.
var KeyBitSizes = []int{2048, 3072, 4096}

// GenerateRSAKey makes a key pair from crypto/rand and returns the private key as PKCS #8
// PEM and the public key as PKIX PEM, the form Auth0's credentials API takes.
func GenerateRSAKey(bits int) (privatePEM, publicPEM string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return "", "", fmt.Errorf("generating a %d-bit RSA key: %w", bits, err)
	}
	return EncodeRSAKey(key)
}

func EncodeRSAKey(key *rsa.PrivateKey) (privatePEM, publicPEM string, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})), nil
}

// ParsePrivateKey reads a PKCS #8 PEM RSA private key.
func ParsePrivateKey(privatePEM string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(privatePEM))
	if block == nil {
		return nil, errors.New("the stored private key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the stored private key: %w", err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the stored private key is not an RSA key")
	}
	return rsaKey, nil
}

// PublicKeyPEM derives the PKIX PEM public key of a stored private key.
func PublicKeyPEM(privatePEM string) (string, error) {
	key, err := ParsePrivateKey(privatePEM)
	if err != nil {
		return "", err
	}
	_, pub, err := EncodeRSAKey(key)
	return pub, err
}

// SignAssertion makes a client assertion for clientID: a JWT signed with the private key,
// iss = sub = clientID, aud = audience (Auth0: "https://<domain>/"), a unique jti, and
// exp = now + ttl. kid, when known, tells Auth0 which attached key to check.
func SignAssertion(privatePEM, alg, kid, clientID, audience string, now time.Time, ttl time.Duration) (string, error) {
	key, err := ParsePrivateKey(privatePEM)
	if err != nil {
		return "", err
	}
	header := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	switch alg {
	case AlgRS256:
		sum := sha256.Sum256([]byte(signingInput))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	case AlgRS384:
		sum := sha512.Sum384([]byte(signingInput))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA384, sum[:])
	case AlgPS256:
		sum := sha256.Sum256([]byte(signingInput))
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default:
		return "", fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return "", fmt.Errorf("signing a client assertion: %w", err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
