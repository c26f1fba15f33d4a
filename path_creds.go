package auth0

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
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
					Summary:     "Read a role's current credential: its client secret, private_key_jwt key, or mTLS certificate.",
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
	b.AwaitRecovery(ctx, name)
	creds, err := b.LoadCredsCached(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	var role *model.RoleEntry
	if creds == nil {
		// No such role, no secret yet, or a role in the v0.1.0 layout not upgraded yet.
		if role, err = model.LoadRole(ctx, req.Storage, name); err != nil {
			return nil, err
		}
		if role == nil {
			return logical.ErrorResponse("role %q does not exist", name), nil
		}
		if creds, err = engine.BuildCreds(ctx, req.Storage, name, role); err != nil {
			if gone, rerr := model.RoleGone(ctx, req.Storage, name); gone || rerr != nil {
				// A delete ran between the two reads: it removed the secrets too.
				return logical.ErrorResponse("role %q does not exist", name), rerr
			}
			if !role.Legacy() {
				// In the current layout a role always has creds to serve once it has a
				// version, until a delete removes them first, then its secrets, then it.
				return logical.ErrorResponse("role %q is being deleted, or a delete of it was cut short (delete it again)", name), nil
			}
			return nil, err
		}
		if creds == nil {
			if pk := role.PendingKey; pk != nil {
				return firstKeyPending(name, pk, b.Clock.Now()), nil
			}
			return logical.ErrorResponse("role %q has no secret yet; rotate it (vault write -f <mount>/rotate/%s) or recreate it with import_current_secret=true", name, name), nil
		}
	}
	b.Metrics.CredsRead(name) // counted once the role is known to exist: names are labels
	served, previous := creds.Current, creds.Previous
	if raw, ok := d.GetOk("version"); ok && raw.(int) != served.Version {
		var resp *logical.Response
		if served, previous, resp, err = b.olderVersion(ctx, req.Storage, name, role, raw.(int)); resp != nil || err != nil {
			return resp, err
		}
	}
	return b.credsResponse(ctx, req.Storage, creds, served, previous)
}

// firstKeyPending answers a creds read of a key role whose first key rotation is under way.
func firstKeyPending(name string, pk *model.PendingKey, now time.Time) *logical.Response {
	if pk.PublishAt.IsZero() {
		return logical.ErrorResponse("role %q has no key yet: its first key is being registered at Auth0; read again in a few seconds", name)
	}
	return logical.ErrorResponse("role %q has no key yet: its first key is attached at Auth0 and is served from %s, once Auth0 had propagation_wait to apply it (in %ds); read again then",
		name, pk.PublishAt.UTC().Format(time.RFC3339), secondsUntil(pk.PublishAt, now))
}

// olderVersion reads retained version n and the one before it, off the hot path.
func (b *backend) olderVersion(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, n int) (*model.SecretEntry, *model.SecretEntry, *logical.Response, error) {
	var err error
	if role == nil {
		if role, err = model.LoadRole(ctx, s, name); err != nil || role == nil {
			return nil, nil, logical.ErrorResponse("role %q does not exist", name), err
		}
	}
	if role.Version(n) == nil {
		if len(role.Versions) == 0 {
			// Creds stored, the role not yet: a commit cut short, which its next job finishes.
			return nil, nil, logical.ErrorResponse("role %q has no version %d; it lists no retained versions yet", name, n), nil
		}
		return nil, nil, logical.ErrorResponse("role %q has no version %d; retained versions are %d to %d", name, n, role.Versions[0].Version, role.CurrentVersion()), nil
	}
	served, err := model.LoadSecret(ctx, s, name, role, n)
	if err != nil {
		return nil, nil, nil, err
	}
	if served == nil {
		// A rotation that pruned the version, or a delete, may have run since the role was
		// read: then the answer is what a read after it gets.
		if role, err = model.LoadRole(ctx, s, name); err != nil || role == nil {
			return nil, nil, logical.ErrorResponse("role %q does not exist", name), err
		}
		if role.Version(n) == nil {
			return b.olderVersion(ctx, s, name, role, n) // answers which versions it has
		}
		if creds, err := model.LoadCreds(ctx, s, name); err == nil && creds == nil && !role.Legacy() {
			return nil, nil, logical.ErrorResponse("role %q is being deleted, or a delete of it was cut short (delete it again)", name), nil
		}
		return nil, nil, nil, fmt.Errorf("role %q: the secret of retained version %d is missing from storage", name, n)
	}
	var previous *model.SecretEntry
	if role.Version(n-1) != nil {
		if previous, err = model.LoadSecret(ctx, s, name, role, n-1); err != nil {
			return nil, nil, nil, err
		}
	}
	return served, previous, nil, nil
}

// credsResponse answers a creds read serving version served of the role described by creds.
// A read of the current version answers every field of its credential type in every
// state, empty ("", 0) when it does not apply, so that a consumer naming a field (a CSI
// object's secretKey, an environment variable from a Kubernetes Secret) finds it whatever
// the role is doing; and it tells consumers when to read again (creds_answer.go).
func (b *backend) credsResponse(ctx context.Context, s logical.Storage, creds *model.CredsEntry, served, previous *model.SecretEntry) (*logical.Response, error) {
	conn, resp, err := b.RequireConnection(ctx, s)
	if resp != nil || err != nil {
		return resp, err
	}
	current := served.Version == creds.Current.Version
	now := b.Clock.Now()
	if current && previous != nil && !previous.ExpiresAt.IsZero() && !previous.ExpiresAt.After(now) {
		// A certificate past its expiry, still stored as the previous one while the
		// overlap's end is retried: Auth0 refuses it, so it is not handed out.
		previous = nil
	}
	data := map[string]interface{}{
		"client_id":           creds.ClientID,
		"domain":              conn.Config.Domain(),
		"version":             served.Version,
		"last_vault_rotation": served.CreatedTime.Format(time.RFC3339),
	}
	engine.KindFor(creds.KindKey()).CredsFields(creds, served, previous, current, data)
	if !current {
		return &logical.Response{Data: data}, nil
	}
	again := engine.ReadAgainAt(creds, now)
	data["last_vault_rotation"] = again.Since.UTC().Format(time.RFC3339)
	data["ttl"] = secondsUntil(again.At, now)
	data["rotation_schedule"] = creds.RotationSchedule
	data["next_vault_rotation"] = engine.TimeOrEmpty(creds.NextVaultRotation)
	// rotation_period is what consumers that re-read at ttl need to see to do so at all
	// (Vault Agent 1.13, Vault Secrets Operator): for a rotation_schedule the interval
	// between its next two times, for a role without a schedule max_ttl.
	period := creds.MaxTTLOrDefault()
	switch {
	case creds.RotationPeriod > 0:
		period = creds.RotationPeriod
	case creds.RotationSchedule != "" && !creds.NextVaultRotation.IsZero():
		sched := model.RoleEntry{RotationSchedule: creds.RotationSchedule}
		if after := sched.NextRotation(creds.NextVaultRotation); !after.IsZero() {
			period = after.Sub(creds.NextVaultRotation)
		}
	}
	data["rotation_period"] = int64(period.Seconds())
	return &logical.Response{Data: data}, nil
}

// secondsUntil is the whole seconds from now to t, at least 1 so that a client treats an
// overdue rotation as "re-read soon" rather than "never expires".
func secondsUntil(t, now time.Time) int64 {
	return int64(math.Max(1, math.Ceil(t.Sub(now).Seconds())))
}

// credsResponses documents a creds read (OpenAPI, docs/API.md). A read of the current
// version answers every field of the role's credential type, empty when it does not apply.
var credsResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: engine.WithKindFields(map[string]*framework.FieldSchema{
		"client_id":           {Type: framework.TypeString, Description: "Client ID of the role's Auth0 application."},
		"domain":              {Type: framework.TypeString, Description: "Auth0 domain to call (config's domain)."},
		"version":             {Type: framework.TypeInt, Description: "The version served."},
		"last_vault_rotation": {Type: framework.TypeTime, Description: "RFC 3339. The current version: the latest time the engine changed or confirmed this answer: a rotation, a staged secret's publication or switch, a key rotation's start or publication, a failed attempt, or else every max_ttl; it moves each time ttl runs out (what Vault Secrets Operator expects of a rotation). An older version: when it was made."},
		"rotation_period":     {Type: framework.TypeInt64, Description: "Seconds between scheduled rotations; for a rotation_schedule, between its next two times; for a role without a schedule, max_ttl. Consumers that re-read at ttl need it present (Vault Agent 1.13, Vault Secrets Operator)."},
		"rotation_schedule":   {Type: framework.TypeString, Description: "The role's cron schedule; empty when it has none."},
		"next_vault_rotation": {Type: framework.TypeString, Description: "When the next scheduled rotation is due (RFC 3339); empty when not scheduled."},
		"ttl":                 {Type: framework.TypeInt64, Description: "Seconds until a consumer should read again: the next change it must see (the next rotation, the publication or switch of a staged secret, a key's publication, or while rotations fail the next attempt), and at most max_ttl; at least 1. Absent for an older version."},
	}, func(s engine.KindSchemas) map[string]*framework.FieldSchema { return s.Creds }),
}}}

const pathCredsHelpSyn = `Read a role's current Auth0 client secret, private_key_jwt key, or mTLS certificate.`

var pathCredsHelpDesc = `
Returns what an application needs to call Auth0: client_id, client_secret and domain,
with the version served. previous_client_secret is the version before it, when retained:
Auth0 may take up to 30 seconds to accept a new secret, so a client can fall back to it.

Every field of the role's credential type is present in every state, empty ("" or 0)
when it does not apply, so that a consumer naming a field (a CSI driver object, an
environment variable from a Kubernetes Secret) always finds it.

ttl tells consumers when to read again: the next change they must see (the next
rotation; for a staged role the publication of the next secret, then the switch; for a
private_key_jwt or self_signed_tls_client_auth role the new credential's publication; while rotations fail the next attempt),
and at most max_ttl (a role setting, default 5 minutes), so that a manual rotation
reaches consumers within it. last_vault_rotation is the latest time the engine changed or
confirmed the answer (a rotation, a publication, a switch, a failed attempt, or every
max_ttl between them): it moves each time ttl runs out, as Vault Secrets Operator expects
of a rotation. rotation_period is the role's, for a rotation_schedule the interval
between its next two times, and for a role without a schedule max_ttl: Vault Agent 1.13
and Vault Secrets Operator re-read at ttl only when it is present.

` + engine.KindHelp(func(s engine.KindSchemas) string { return s.CredsHelp }) + `Read an older retained version with:

  vault read auth0/creds/myapp version=3

A role that has never been rotated (and was not created with import_current_secret) has
no secret yet: rotate it first.
`
