package auth0

import (
	"context"
	"math"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "creds/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "read",
				OperationSuffix: "credentials",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role.",
					Required:    true,
				},
				"version": {
					Type:        framework.TypeInt,
					Description: "Serve this retained version instead of the current one.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathCredsRead},
			},
			HelpSynopsis:    pathCredsHelpSyn,
			HelpDescription: pathCredsHelpDesc,
		},
	}
}

// pathCredsRead is the hot path: one storage read (the role), config from memory, no
// Auth0 call and no lock. Only right after a start that found this role's rotation left
// in flight does it wait for the reconciliation.
func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.awaitRecovery(ctx, name)
	role, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("role %q does not exist", name), nil
	}
	latest := role.latest()
	if latest == nil {
		return logical.ErrorResponse("role %q has no secret yet; rotate it (vault write -f <mount>/rotate/%s) or recreate it with import_current_secret=true", name, name), nil
	}
	served := latest
	if raw, ok := d.GetOk("version"); ok {
		n := raw.(int)
		if served = role.version(n); served == nil {
			return logical.ErrorResponse("role %q has no version %d; retained versions are %d to %d", name, n, role.Versions[0].Version, latest.Version), nil
		}
	}
	conn, resp, err := b.requireConnection(ctx, req.Storage)
	if resp != nil || err != nil {
		return resp, err
	}

	data := map[string]interface{}{
		"client_id":           role.ClientID,
		"client_secret":       served.Secret,
		"domain":              conn.config.domain(),
		"version":             served.Version,
		"last_vault_rotation": served.CreatedTime.Format(time.RFC3339),
	}
	if prev := role.version(served.Version - 1); prev != nil {
		data["previous_client_secret"] = prev.Secret
	}
	switch {
	case role.RotationPeriod > 0:
		data["rotation_period"] = int64(role.RotationPeriod.Seconds())
	case role.RotationSchedule != "":
		data["rotation_schedule"] = role.RotationSchedule
		// Vault Agent 1.13 (consul-template 0.29) re-reads a secret without a lease at ttl
		// only when rotation_period is present, so a schedule also reports the interval
		// between its next two times.
		if next := role.NextVaultRotation; !next.IsZero() {
			data["rotation_period"] = int64(role.nextRotation(next).Sub(next).Seconds())
		}
	}
	if !role.NextVaultRotation.IsZero() {
		addTime(data, "next_vault_rotation", role.NextVaultRotation)
		if served == latest {
			data["ttl"] = secondsUntil(role.NextVaultRotation, time.Now())
		}
	}
	return &logical.Response{Data: data}, nil
}

// secondsUntil is the whole seconds from now to t, at least 1 so that a client treats an
// overdue rotation as "re-read soon" rather than "never expires".
func secondsUntil(t, now time.Time) int64 {
	return int64(math.Max(1, math.Ceil(t.Sub(now).Seconds())))
}

const pathCredsHelpSyn = `Read a role's current Auth0 client secret.`

const pathCredsHelpDesc = `
Returns what an application needs to call Auth0: client_id, client_secret and domain,
with the version served and last_vault_rotation. previous_client_secret is the version
before it, when retained: Auth0 may take up to 30 seconds to accept a new secret, so a
client can fall back to it.

When the role rotates automatically, rotation_period or rotation_schedule,
next_vault_rotation and ttl (seconds to the next rotation) are returned too, so Vault Agent
re-renders its templates right after each scheduled rotation. For a rotation_schedule,
rotation_period is the interval between its next two scheduled times: Vault Agent 1.13
re-reads at ttl only when rotation_period is present.

Read an older retained version with:

  vault read auth0/creds/myapp version=3

A role that has never been rotated (and was not created with import_current_secret) has
no secret yet: rotate it first.
`
