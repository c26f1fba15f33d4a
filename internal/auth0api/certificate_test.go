package auth0api

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

func TestSelfSignedCertificate(t *testing.T) {
	privatePEM, _, err := GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	certPEM, thumb, err := SelfSignedCertificate(privatePEM, "app-1", from, from.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(certPEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if cert.Subject.CommonName != "app-1" || !cert.NotBefore.Equal(from) || !cert.NotAfter.Equal(from.Add(90*24*time.Hour)) {
		t.Errorf("subject %q, valid %s to %s", cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usage %v, want client auth only", cert.ExtKeyUsage)
	}
	key, _ := ParsePrivateKey(privatePEM)
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("the certificate is not for the given key")
	}
	again, err := Thumbprint(certPEM)
	if err != nil || again != thumb || len(thumb) != 43 {
		t.Errorf("thumbprint %q, recomputed %q (%v); want 43 base64url characters", thumb, again, err)
	}
	if _, err := Thumbprint(privatePEM); err == nil {
		t.Error("a private key has no thumbprint")
	}
}
