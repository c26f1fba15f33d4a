package model

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"time"
)

// The state of private_key_jwt rotations (keys.go), a part of RoleEntry.

const DefaultKeyBits = 2048

// PendingKey is a key rotation under way; its private key is in secrets/<name>/<Version>.
type PendingKey struct {
	Version int `json:"version"`
	// Name is the credential's name at Auth0 (credentialName): how a credential whose
	// creation answer was lost is found.
	Name string `json:"name"`
	// CredentialID and KID are Auth0's, once known.
	CredentialID string    `json:"credential_id,omitempty"`
	KID          string    `json:"kid,omitempty"`
	Started      time.Time `json:"started"`
	Source       string    `json:"source"`
	// Keep are the credentials attached when the rotation started: they stay attached
	// next to the new key, for the overlap.
	Keep []string `json:"keep,omitempty"`
	// AttachedAt is when Auth0 accepted the attachment of the new key; it is served from
	// PublishAt, once Auth0 has had propagation_wait to apply it everywhere.
	AttachedAt time.Time `json:"attached_at,omitempty"`
	PublishAt  time.Time `json:"publish_at,omitempty"`
}

// KeyOverlap is the key generation a rotation replaced, still attached until Until.
type KeyOverlap struct {
	// Version is the role's version of the previous key; 0 when the keys were not Vault's
	// (an application already on private_key_jwt when the role took it over).
	Version       int       `json:"version,omitempty"`
	CredentialIDs []string  `json:"credential_ids"`
	Until         time.Time `json:"until"`
	// Ending is set, and creds stop serving the previous key, before Auth0 is asked to
	// detach it: a detach cut short never leaves creds serving a key that no longer works.
	Ending bool `json:"ending,omitempty"`
}

func (r *RoleEntry) KeyBitsOrDefault() int {
	if r.KeyBits > 0 {
		return r.KeyBits
	}
	return DefaultKeyBits
}

func (r *RoleEntry) KeyAlgorithm() string {
	if r.Algorithm != "" {
		return r.Algorithm
	}
	return auth0api.AlgRS256
}

// OverlapPeriodOrDefault is how long the previous key stays attached; a role write sets the default
// explicitly, so that 0 (detach at once) stays expressible.
func (r *RoleEntry) OverlapPeriodOrDefault() time.Duration { return r.OverlapPeriod }

// PendingKeyIfAny is r's pending key, nil for a nil r.
func (r *RoleEntry) PendingKeyIfAny() *PendingKey {
	if r == nil {
		return nil
	}
	return r.PendingKey
}
