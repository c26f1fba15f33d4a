package auth0

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

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Signing algorithms Auth0 accepts for private_key_jwt credentials.
const (
	algRS256 = "RS256"
	algRS384 = "RS384"
	algPS256 = "PS256"
)

var keyAlgorithms = []string{algRS256, algRS384, algPS256}

// keyBitSizes are the RSA key sizes a role may ask for.
var keyBitSizes = []int{2048, 3072, 4096}

// generateRSAKey makes a key pair from crypto/rand and returns the private key as PKCS #8
// PEM and the public key as PKIX PEM, the form Auth0's credentials API takes.
func generateRSAKey(bits int) (privatePEM, publicPEM string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return "", "", fmt.Errorf("generating a %d-bit RSA key: %w", bits, err)
	}
	return encodeRSAKey(key)
}

func encodeRSAKey(key *rsa.PrivateKey) (privatePEM, publicPEM string, err error) {
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

// parsePrivateKey reads a PKCS #8 PEM RSA private key.
func parsePrivateKey(privatePEM string) (*rsa.PrivateKey, error) {
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

// publicKeyPEM derives the PKIX PEM public key of a stored private key.
func publicKeyPEM(privatePEM string) (string, error) {
	key, err := parsePrivateKey(privatePEM)
	if err != nil {
		return "", err
	}
	_, pub, err := encodeRSAKey(key)
	return pub, err
}

// signAssertion makes a client assertion for clientID: a JWT signed with the private key,
// iss = sub = clientID, aud = audience (Auth0: "https://<domain>/"), a unique jti, and
// exp = now + ttl. kid, when known, tells Auth0 which attached key to check.
func signAssertion(privatePEM, alg, kid, clientID, audience string, now time.Time, ttl time.Duration) (string, error) {
	key, err := parsePrivateKey(privatePEM)
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
	case algRS256:
		sum := sha256.Sum256([]byte(signingInput))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	case algRS384:
		sum := sha512.Sum384([]byte(signingInput))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA384, sum[:])
	case algPS256:
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
