package auth0

import (
	"context"
	"fmt"
	"math"
	"net/http"
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
					Query:       true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:    b.pathCredsRead,
					Summary:     "Read a role's current credential: its client secret, or private_key_jwt key.",
					Description: pathCredsHelpDesc,
					Responses:   credsResponses,
				},
			},
			HelpSynopsis:    pathCredsHelpSyn,
			HelpDescription: pathCredsHelpDesc,
		},
	}
}

// pathCredsRead is the hot path: one storage read (creds/<name>, which holds everything it
// answers), config from memory, no Auth0 call and no lock. Only right after a start that
// found this role's rotation left in flight does it wait for the reconciliation.
func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.awaitRecovery(ctx, name)
	creds, err := b.loadCredsCached(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	var role *roleEntry
	if creds == nil {
		// No such role, no secret yet, or a role in the v0.1.0 layout not upgraded yet.
		if role, err = loadRole(ctx, req.Storage, name); err != nil {
			return nil, err
		}
		if role == nil {
			return logical.ErrorResponse("role %q does not exist", name), nil
		}
		if creds, err = buildCreds(ctx, req.Storage, name, role); err != nil {
			if gone, rerr := roleGone(ctx, req.Storage, name); gone || rerr != nil {
				// A delete ran between the two reads: it removed the secrets too.
				return logical.ErrorResponse("role %q does not exist", name), rerr
			}
			return nil, err
		}
		if creds == nil {
			return logical.ErrorResponse("role %q has no secret yet; rotate it (vault write -f <mount>/rotate/%s) or recreate it with import_current_secret=true", name, name), nil
		}
	}
	served, previous := creds.Current, creds.Previous
	if raw, ok := d.GetOk("version"); ok && raw.(int) != served.Version {
		var resp *logical.Response
		if served, previous, resp, err = b.olderVersion(ctx, req.Storage, name, role, raw.(int)); resp != nil || err != nil {
			return resp, err
		}
	}
	return b.credsResponse(ctx, req.Storage, creds, served, previous)
}

// olderVersion reads retained version n and the one before it, off the hot path.
func (b *backend) olderVersion(ctx context.Context, s logical.Storage, name string, role *roleEntry, n int) (*secretEntry, *secretEntry, *logical.Response, error) {
	var err error
	if role == nil {
		if role, err = loadRole(ctx, s, name); err != nil || role == nil {
			return nil, nil, logical.ErrorResponse("role %q does not exist", name), err
		}
	}
	if role.version(n) == nil {
		if len(role.Versions) == 0 {
			// Creds stored, the role not yet: a commit cut short, which its next job finishes.
			return nil, nil, logical.ErrorResponse("role %q has no version %d; it lists no retained versions yet", name, n), nil
		}
		return nil, nil, logical.ErrorResponse("role %q has no version %d; retained versions are %d to %d", name, n, role.Versions[0].Version, role.currentVersion()), nil
	}
	served, err := loadSecret(ctx, s, name, role, n)
	if err != nil {
		return nil, nil, nil, err
	}
	if served == nil {
		// A rotation that pruned the version, or a delete, may have run since the role was
		// read: then the answer is what a read after it gets.
		if role, err = loadRole(ctx, s, name); err != nil || role == nil {
			return nil, nil, logical.ErrorResponse("role %q does not exist", name), err
		}
		if role.version(n) == nil {
			return b.olderVersion(ctx, s, name, role, n) // answers which versions it has
		}
		return nil, nil, nil, fmt.Errorf("role %q: the secret of retained version %d is missing from storage", name, n)
	}
	var previous *secretEntry
	if role.version(n-1) != nil {
		if previous, err = loadSecret(ctx, s, name, role, n-1); err != nil {
			return nil, nil, nil, err
		}
	}
	return served, previous, nil, nil
}

// credsResponse answers a creds read serving version served of the role described by creds.
func (b *backend) credsResponse(ctx context.Context, s logical.Storage, creds *credsEntry, served, previous *secretEntry) (*logical.Response, error) {
	conn, resp, err := b.requireConnection(ctx, s)
	if resp != nil || err != nil {
		return resp, err
	}
	data := map[string]interface{}{
		"client_id":           creds.ClientID,
		"domain":              conn.config.domain(),
		"version":             served.Version,
		"last_vault_rotation": served.CreatedTime.Format(time.RFC3339),
	}
	if creds.CredentialType == credentialPrivateKeyJWT {
		data["private_key"], data["key_id"], data["kid"], data["algorithm"] = served.PrivateKey, served.KeyID, served.KID, served.Algorithm
		if previous != nil && served.Version == creds.Current.Version {
			data["previous_private_key"], data["previous_key_id"], data["previous_kid"] = previous.PrivateKey, previous.KeyID, previous.KID
			addTime(data, "overlap_until", creds.OverlapUntil)
		}
	} else {
		data["client_secret"] = served.Secret
		if previous != nil {
			data["previous_client_secret"] = previous.Secret
		}
	}
	if next := creds.Next; next != nil && served.Version == creds.Current.Version {
		data["next_client_secret"] = next.Secret
		data["next_version"] = next.Version
		addTime(data, "next_switch_time", creds.NextSwitchTime)
	}
	switch {
	case creds.RotationPeriod > 0:
		data["rotation_period"] = int64(creds.RotationPeriod.Seconds())
	case creds.RotationSchedule != "":
		data["rotation_schedule"] = creds.RotationSchedule
		// Vault Agent 1.13 (consul-template 0.29) re-reads a secret without a lease at ttl
		// only when rotation_period is present, so a schedule also reports the interval
		// between its next two times.
		if next := creds.NextVaultRotation; !next.IsZero() {
			sched := roleEntry{RotationSchedule: creds.RotationSchedule}
			if after := sched.nextRotation(next); !after.IsZero() {
				data["rotation_period"] = int64(after.Sub(next).Seconds())
			}
		}
	}
	addTime(data, "next_vault_rotation", creds.NextVaultRotation)
	// ttl points at the next change a consumer must see: the next rotation, or while
	// rotations fail, the engine's next attempt, never sooner.
	if next := creds.nextChange(); !next.IsZero() && served.Version == creds.Current.Version {
		data["ttl"] = secondsUntil(next, b.clock.Now())
	}
	return &logical.Response{Data: data}, nil
}

// secondsUntil is the whole seconds from now to t, at least 1 so that a client treats an
// overdue rotation as "re-read soon" rather than "never expires".
func secondsUntil(t, now time.Time) int64 {
	return int64(math.Max(1, math.Ceil(t.Sub(now).Seconds())))
}

// credsResponses documents a creds read (OpenAPI, docs/API.md).
var credsResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"client_id":              {Type: framework.TypeString, Description: "Client ID of the role's Auth0 application."},
		"domain":                 {Type: framework.TypeString, Description: "Auth0 domain to call (config's domain)."},
		"version":                {Type: framework.TypeInt, Description: "The version served."},
		"last_vault_rotation":    {Type: framework.TypeTime, Description: "When the version served was made (RFC 3339)."},
		"client_secret":          {Type: framework.TypeString, Description: "client_secret roles: the application's client secret.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"previous_client_secret": {Type: framework.TypeString, Description: "client_secret roles: the version before the one served, when retained; Auth0 may take up to 30 seconds to accept a new secret.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"next_client_secret":     {Type: framework.TypeString, Description: "Staged roles, while a next secret is staged: the secret that becomes current at next_switch_time.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"next_version":           {Type: framework.TypeInt, Description: "Staged roles, while a next secret is staged: its version."},
		"next_switch_time":       {Type: framework.TypeTime, Description: "Staged roles, while a next secret is staged: when it becomes current."},
		"private_key":            {Type: framework.TypeString, Description: "private_key_jwt roles: the private key (PEM, PKCS #8).", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"key_id":                 {Type: framework.TypeString, Description: "private_key_jwt roles: Auth0 credential id of the key."},
		"kid":                    {Type: framework.TypeString, Description: "private_key_jwt roles: key id to put in the assertion's header."},
		"algorithm":              {Type: framework.TypeString, Description: "private_key_jwt roles: signing algorithm."},
		"previous_private_key":   {Type: framework.TypeString, Description: "private_key_jwt roles, until overlap_until: the previous key, still attached at Auth0.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"previous_key_id":        {Type: framework.TypeString, Description: "private_key_jwt roles, until overlap_until: Auth0 credential id of the previous key."},
		"previous_kid":           {Type: framework.TypeString, Description: "private_key_jwt roles, until overlap_until: key id of the previous key."},
		"overlap_until":          {Type: framework.TypeTime, Description: "private_key_jwt roles: when the previous key is detached."},
		"rotation_period":        {Type: framework.TypeInt64, Description: "Seconds between scheduled rotations; for a rotation_schedule, between its next two times (Vault Agent re-reads at ttl only when it is present)."},
		"rotation_schedule":      {Type: framework.TypeString, Description: "The role's cron schedule, when it has one."},
		"next_vault_rotation":    {Type: framework.TypeTime, Description: "When the next scheduled rotation is due; only when scheduled."},
		"ttl":                    {Type: framework.TypeInt64, Description: "Seconds until the next change a consumer must see: the next rotation, the publication or switch of a staged secret, or while rotations fail the next attempt. Absent when nothing is scheduled, and for an older version."},
	},
}}}

const pathCredsHelpSyn = `Read a role's current Auth0 client secret, or private_key_jwt key.`

const pathCredsHelpDesc = `
Returns what an application needs to call Auth0: client_id, client_secret and domain,
with the version served and last_vault_rotation. previous_client_secret is the version
before it, when retained: Auth0 may take up to 30 seconds to accept a new secret, so a
client can fall back to it.

When the role rotates automatically, rotation_period or rotation_schedule,
next_vault_rotation and ttl (seconds to the next rotation) are returned too, so Vault Agent
re-renders its templates right after each scheduled rotation. While rotations fail, ttl
counts to the engine's next attempt instead, so clients do not re-read every second. For a rotation_schedule,
rotation_period is the interval between its next two scheduled times: Vault Agent 1.13
re-reads at ttl only when rotation_period is present.

For a role with rotation_strategy=staged, while a next secret is staged (from
stage_period before each rotation until the switch) next_client_secret, next_version and
next_switch_time are returned too, and ttl counts to the next change a consumer must see:
the publication of the next secret, then the switch. Two ways to consume it with zero
downtime:

  (a) an application that authenticates with client_secret: on a 401 from Auth0, retry
      with next_client_secret, then with previous_client_secret, and keep cycling through
      them for a while: Auth0 may take up to 30 seconds to accept a new secret
      everywhere, answering for the old or the new one from request to request;
  (b) an application that only verifies HS256 ID tokens signed with the secret: accept a
      signature by client_secret, previous_client_secret or next_client_secret.

For a role with credential_type=private_key_jwt, no client_secret: private_key (PEM,
PKCS #8), key_id (the Auth0 credential id), kid (put it in the assertion's header) and
algorithm; while the previous key is still attached at Auth0, previous_private_key,
previous_key_id, previous_kid and overlap_until too. An application signs its client
assertions (iss = sub = client_id, aud = "https://<domain>/", a unique jti, exp at most
5 minutes ahead) with private_key; either key works until overlap_until.

Read an older retained version with:

  vault read auth0/creds/myapp version=3

A role that has never been rotated (and was not created with import_current_secret) has
no secret yet: rotate it first.
`
