package model

import (
	"time"
)

// The state of certificate roles (certs.go), a part of RoleEntry, VersionMeta and
// SecretEntry.

const DefaultCertificateTTL = 365 * 24 * time.Hour

// certSettings are the settings only certificate roles have (a part of RoleEntry).
type certSettings struct {
	// CertificateTTL is how long each certificate is valid (0: the default).
	CertificateTTL time.Duration `json:"certificate_ttl,omitempty"`
}

// CertVersion describes a certificate version (a part of VersionMeta and SecretEntry).
type CertVersion struct {
	Thumbprint string    `json:"thumbprint_sha256,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitempty"`
}

// certSecret is a certificate version's material beyond its private key (a part of
// SecretEntry).
type certSecret struct {
	Certificate string `json:"certificate,omitempty"`
	CertVersion
}

func (r *RoleEntry) CertificateTTLOrDefault() time.Duration {
	if r.CertificateTTL > 0 {
		return r.CertificateTTL
	}
	return DefaultCertificateTTL
}
