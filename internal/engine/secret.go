package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// secretKind is credential_type=client_secret with the immediate strategy: Auth0's
// rotate-secret makes the next secret, and the old one stops working at once. Its job is
// made crash-safe by a write-ahead entry (recovery.go).
type secretKind struct{}

func (secretKind) CredentialType() string { return model.CredentialClientSecret }
func (secretKind) Strategy() string       { return "" }
func (secretKind) rotates() string        { return "immediately" }
func (secretKind) ownFields() []string    { return nil }
func (secretKind) options() []string      { return nil }

func (secretKind) ApplyFields(*model.RoleEntry, *framework.FieldData, bool, time.Time) *logical.Response {
	return nil
}

func (secretKind) CheckApplication(context.Context, *connection, *model.RoleEntry) (*logical.Response, error) {
	return nil, nil
}

func (secretKind) ReadFields(*model.RoleEntry, map[string]interface{}) {}

// scheduleProblem: an immediate secret fits any schedule.
func (secretKind) scheduleProblem(*model.RoleEntry, time.Time) string { return "" }

func (secretKind) applicationProblem(role *model.RoleEntry, methods *auth0api.AuthMethods) string {
	return secretMethodProblem(role.ClientID, methods)
}

// secretMethodProblem says why rotating clientID's client secret would change nothing it
// authenticates with (methods, as Auth0 has them), "" when it authenticates with its
// secret (client_secret_post or client_secret_basic).
func secretMethodProblem(clientID string, methods *auth0api.AuthMethods) string {
	switch {
	case methods.UsesSecret():
		return ""
	case methods.SecretMethod == "none":
		return fmt.Sprintf("application %q is a public application (token_endpoint_auth_method \"none\"): it authenticates with no client secret, so rotating one protects nothing; delete the role, or set the application's authentication method to client_secret_post or client_secret_basic in Auth0 (Applications > the application > Credentials)", clientID)
	}
	return fmt.Sprintf("application %q authenticates with %s, not with a client secret: Auth0 refuses to rotate its secret; delete the role and bind the application with a role of credential_type=private_key_jwt or self_signed_tls_client_auth (whichever it uses), or switch it back to client_secret_post in Auth0 (Applications > the application > Credentials)", clientID, methodName(methods))
}

// methodName names how an application authenticates, for messages.
func methodName(methods *auth0api.AuthMethods) string {
	if m := methods.Current(); m != "" {
		return m
	}
	return "no method Auth0 reports"
}

func (secretKind) run(ctx context.Context, j *roleJob) (*model.VersionMeta, *logical.Response, error) {
	return j.resolveThenRotate(ctx, func(context.Context) (*model.VersionMeta, *logical.Response, error) {
		conn, err := j.b.Connection(ctx, j.s)
		if err != nil {
			return j.fail(ctx, nil, err)
		}
		if conn == nil {
			return j.fail(ctx, logical.ErrorResponse(errNotConfigured), nil)
		}
		return j.rotate(conn)
	})
}

func (secretKind) dueTime(r *model.RoleEntry, now time.Time) time.Time { return r.ScheduledDue(now, 0) }
func (secretKind) consumerLead(*model.RoleEntry) time.Duration         { return 0 }

// schemas are the immediate strategy's fields in the API: a client secret in creds.
func (secretKind) schemas() KindSchemas {
	return KindSchemas{
		Creds: secretCredsSchemas(),
		About: `"client_secret" (default): the application's client secret, rotated immediately or staged (rotation_strategy)`,
		RoleHelp: `Rotation strategy: "immediate" (default) calls Auth0's rotate-secret; the old secret
stops working at once, so consumers fail until they re-read. "staged" gives zero downtime:
stage_period (default 24h) before each rotation Vault generates the next secret (from
password_policy, a Vault password policy, if set) and publishes it in creds as
next_client_secret; at the rotation it sets it on Auth0 (PATCH, needs
update:client_keys) and makes it current. Consumers that fall back to next_client_secret
(see creds) never fail.

Credential type: "client_secret" (default) rotates the application's secret.
`,
	}
}

// secretCredsSchemas documents the creds fields of a client secret, immediate or staged.
func secretCredsSchemas() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"client_secret":          {Type: framework.TypeString, Description: "client_secret roles: the application's client secret.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"previous_client_secret": {Type: framework.TypeString, Description: "client_secret roles: the version before the one served, when retained, else empty; Auth0 may take up to 30 seconds to accept a new secret.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"next_client_secret":     {Type: framework.TypeString, Description: "client_secret roles: while a next secret is staged, the secret that becomes current at next_switch_time; else empty.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		"next_version":           {Type: framework.TypeInt, Description: "client_secret roles: the staged secret's version; 0 when none."},
		"next_switch_time":       {Type: framework.TypeString, Description: "client_secret roles: when the staged secret becomes current (RFC 3339); empty when none."},
	}
}

func (secretKind) servesPrevious(*model.RoleEntry, int) bool { return true }

func (secretKind) credsMeta(_ *model.RoleEntry, c *model.CredsEntry) {
	c.Next, c.NextSwitchTime = nil, time.Time{}
}

func (secretKind) nextChange(c *model.CredsEntry) time.Time {
	if c.RotationPeriod == 0 && c.RotationSchedule == "" {
		return time.Time{}
	}
	return model.Later(c.NextVaultRotation, c.NextAttempt)
}

func (secretKind) CredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{}) {
	secretCredsFields(c, served, previous, current, data)
}

func (secretKind) authenticate(_ *Engine, _ *model.ConfigEntry, c *model.CredsEntry, req *auth0api.TokenRequest) error {
	req.Secret = c.Current.Secret
	return nil
}

// secretCredsFields answers the fields of a client secret, immediate or staged: the
// secret served, the one before it, and (current version) the staged next one.
func secretCredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{}) {
	data["client_secret"] = served.Secret
	if previous != nil {
		data["previous_client_secret"] = previous.Secret
	}
	if !current {
		return
	}
	if previous == nil {
		data["previous_client_secret"] = ""
	}
	data["next_client_secret"], data["next_version"], data["next_switch_time"] = "", 0, ""
	if next := c.Next; next != nil {
		data["next_client_secret"], data["next_version"] = next.Secret, next.Version
		data["next_switch_time"] = TimeOrEmpty(c.NextSwitchTime)
	}
}

// rotate calls Auth0's rotate-secret and stores the outcome.
//
// Auth0 kills the old secret the moment it applies a rotation, and the only copy of the new
// one is in its answer, so the rotation is recorded in a write-ahead entry first, after any
// rate-limit wait, right before the request leaves. If Auth0's answer is lost, the secret
// is read back at once; if that fails, or storing fails, the entry stays and the next job
// of the role (or Vault's rollback manager) resolves it before anything else.
func (j *roleJob) rotate(conn *connection) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	wal := RotationWAL{Role: j.name, ClientID: role.ClientID, BaseVersion: role.CurrentVersion(), Source: j.trigger}
	if role.CurrentVersion() == 0 {
		// Vault knows no secret of this application to tell, after a lost answer, whether
		// the rotation applied: remember a hash of the one Auth0 holds now. Without the
		// scope to read it, recovery rotates once more anyway (recoverLocked).
		info, err := conn.Client.ReadClient(b.ctx, role.ClientID, true)
		switch {
		case err == nil:
			wal.PriorSecretHash = secretHash(info.Secret)
		case !lacksReadClientKeys(err):
			resp, rerr := Auth0Failure(fmt.Sprintf("reading the current secret of role %q (client_id %q) before its first rotation", j.name, role.ClientID), err)
			return j.fail(b.ctx, resp, rerr)
		}
	}
	var walID string
	writeWAL := func() error {
		if walID != "" {
			return nil // a retry after a refused token: the same rotation
		}
		id, err := framework.PutWAL(b.ctx, j.s, WALKindRotation, &wal)
		if err != nil {
			return fmt.Errorf("recording the rotation before calling Auth0: %w", err)
		}
		walID = id
		return nil
	}
	// The call runs on the backend's context, not the request's: a caller that goes away
	// must not cut the exchange between Auth0's answer and our write of the new secret.
	secret, err := conn.Client.RotateSecret(b.ctx, role.ClientID, writeWAL)
	// A 429 applied nothing. A manual rotation waits out a short pause itself (the mount's
	// limiter holds the next attempt until Auth0's reset), rather than failing its caller.
	for tries := 1; auth0api.RateLimited(err) && j.trigger == TriggerManual && tries < maxRateLimitedTries; tries++ {
		if b.Limiter.PausedUntil().Sub(b.Clock.Now()) > maxInlineRateLimitWait {
			break
		}
		b.deleteWAL(j.s, walID)
		walID = ""
		secret, err = conn.Client.RotateSecret(b.ctx, role.ClientID, writeWAL)
	}
	what := fmt.Sprintf("rotating the secret of role %q (client_id %q)", j.name, role.ClientID)
	switch {
	case err == nil:
	case auth0api.RateLimited(err):
		if walID != "" {
			b.deleteWAL(j.s, walID)
		}
		msg := fmt.Sprintf("%s: Auth0 rate limit reached (%v); nothing was changed; try again after %s", what, err, b.Limiter.PausedUntil().UTC().Format(time.RFC3339))
		return j.fail(b.ctx, nil, logical.CodedError(http.StatusTooManyRequests, msg))
	case walID == "":
		resp, rerr := Auth0Failure(what, err)
		return j.fail(b.ctx, resp, rerr)
	case errors.Is(err, auth0api.ErrOutcomeUnknown):
		b.logger().Warn("Auth0's answer to rotate-secret was lost; reading the application's secret back", "role", j.name, "client_id", role.ClientID, "error", err)
		version, rerr := b.resolveWALLocked(b.ctx, j.s, j.name, role, PendingRotation{ID: walID, WAL: wal})
		if rerr != nil {
			msg := fmt.Sprintf("%s: %v; reading the secret back from Auth0 failed too (%v); Vault keeps retrying until it holds the secret Auth0 accepts", what, err, rerr)
			return j.fail(b.ctx, nil, logical.CodedError(http.StatusBadGateway, msg))
		}
		if version != nil {
			return version, nil, nil
		}
		// Auth0 had not applied it: an ordinary failure.
		resp, rerr := Auth0Failure(what, err)
		return j.fail(b.ctx, resp, rerr)
	default:
		b.deleteWAL(j.s, walID)
		resp, rerr := Auth0Failure(what, err)
		return j.fail(b.ctx, resp, rerr)
	}

	version, err := b.CommitVersion(j.s, j.name, role, secret, j.trigger, walID, b.Clock.Now())
	if err != nil {
		b.logger().Error("Auth0 rotated the secret but Vault could not store it; it will be read back from Auth0 before the role rotates again",
			"role", j.name, "client_id", role.ClientID, "error", err)
		return j.fail(b.ctx, nil, fmt.Errorf("Auth0 rotated the secret of role %q but storing it failed (%w); Vault will read it back from Auth0 and store it", j.name, err))
	}
	b.deleteWAL(j.s, walID)
	b.logger().Info("rotated client secret", "role", j.name, "client_id", role.ClientID, "version", version.Version, "source", j.trigger)
	return version, nil, nil
}

func (secretKind) driftOf(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, creds *model.CredsEntry) (string, error) {
	return secretDrift(ctx, b, conn, role, creds)
}
