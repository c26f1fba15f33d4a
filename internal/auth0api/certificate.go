package auth0api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Self-signed certificates for self_signed_tls_client_auth (mTLS client authentication,
// RFC 8705 §2.2): the tenant's edge terminates TLS and forwards the client's certificate
// to Auth0, which accepts it when it matches a credential attached to the application.

// SelfSignedCertificate makes a certificate for the RSA key privatePEM (PKCS #8), signed
// by itself, valid from notBefore to notAfter, for TLS client authentication, with
// commonName as its subject. It returns the certificate as PEM and its SHA-256
// thumbprint (Thumbprint).
func SelfSignedCertificate(privatePEM, commonName string, notBefore, notAfter time.Time) (certPEM, thumbprint string, err error) {
	key, err := ParsePrivateKey(privatePEM)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", fmt.Errorf("generating a certificate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("signing the certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), thumbprintOf(der), nil
}

// Thumbprint is the SHA-256 thumbprint of a PEM certificate, base64url without padding,
// as Auth0 reports it (thumbprint_sha256) and RFC 8705 binds tokens to it (x5t#S256).
func Thumbprint(certPEM string) (string, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("not a PEM certificate")
	}
	return thumbprintOf(block.Bytes), nil
}

func thumbprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
