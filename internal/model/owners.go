package model

import (
	"context"
	"fmt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Ownership: an Auth0 application belongs to at most one role of a mount, or to the
// mount's own config. owners/<client_id> records the claim; the engine checks and takes
// it in one step (claimApplication).

// OwnerConfig is claimApplication's answer for the mount's own Management API application.
const OwnerConfig = "config"

// OwnerBlocked is why a role whose application has another owner is not rotated.
func OwnerBlocked(clientID, owner string) string {
	return OwnerConflict(clientID, owner) + "; the engine does not rotate this role (client_id cannot change): delete it, and create a role for the other application if one is needed"
}

// OwnerConflict says who owns clientID.
func OwnerConflict(clientID, owner string) string {
	if owner == OwnerConfig {
		return fmt.Sprintf("client_id %q is the mount's own Management API application (config); rotating it would cut the engine off from Auth0 (use config/rotate-root for it)", clientID)
	}
	return fmt.Sprintf("client_id %q is already managed by role %q; one Auth0 application belongs to at most one role per mount", clientID, owner)
}

func LoadOwner(ctx context.Context, s logical.Storage, clientID string) (string, error) {
	var o ownerEntry
	found, err := getJSON(ctx, s, OwnerKey(clientID), &o)
	if !found || err != nil {
		return "", err
	}
	return o.Role, nil
}

func SaveOwner(ctx context.Context, s logical.Storage, clientID, role string) error {
	return putJSON(ctx, s, OwnerKey(clientID), &ownerEntry{Role: role})
}

// ownerEntry records which role owns an Auth0 application on this mount.
type ownerEntry struct {
	Role string `json:"role"`
}
