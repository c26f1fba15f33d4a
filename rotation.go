package auth0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// errRoleNotFound is returned by rotateRole for a role that does not exist (any more).
var errRoleNotFound = errors.New("role not found")

// storeAttempts bounds how often a rotated secret's write is retried: once Auth0 has
// applied a rotation the new secret exists nowhere else, so a transient storage error must
// not lose it.
const storeAttempts = 5

// rotateRole rotates the role's secret at Auth0 now and stores it as the next version.
func (b *backend) rotateRole(ctx context.Context, s logical.Storage, name, source string) (*roleEntry, *secretVersion, *logical.Response, error) {
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()

	role, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, nil, nil, err
	}
	if role == nil {
		return nil, nil, nil, errRoleNotFound
	}
	version, resp, err := b.rotateLocked(ctx, s, name, role, source)
	if resp != nil || err != nil {
		return nil, nil, resp, err
	}
	b.schedule(name, role)
	return role, version, nil, nil
}

// rotateLocked rotates role (loaded by the caller, who holds its lock) at Auth0 and stores
// the new secret as the next version.
//
// Auth0 kills the old secret the moment it applies a rotation, and the only copy of the new
// one is in its answer, so the rotation is recorded in a write-ahead log entry first. If
// Auth0's answer is lost, the secret is read back from Auth0 at once; if that fails, or
// storing fails, the entry stays and reconciliation (recovery.go) finishes the job later.
// On a failure that changed nothing at Auth0 the role records it and the returned response
// or error says what happened.
func (b *backend) rotateLocked(ctx context.Context, s logical.Storage, name string, role *roleEntry, source string) (*secretVersion, *logical.Response, error) {
	conn, resp, err := b.requireConnection(ctx, s)
	if resp != nil || err != nil {
		return nil, resp, err
	}
	walID, err := framework.PutWAL(ctx, s, walKindRotation, &rotationWAL{Role: name, ClientID: role.ClientID})
	if err != nil {
		return nil, nil, fmt.Errorf("recording the rotation of role %q before calling Auth0: %w", name, err)
	}

	// The call runs on the backend's context, not the request's: a caller that goes away
	// must not cut the exchange between Auth0's answer and our write of the new secret.
	secret, err := conn.client.RotateSecret(b.ctx, role.ClientID)
	now := time.Now().UTC()
	what := fmt.Sprintf("rotating the secret of role %q (client_id %q)", name, role.ClientID)
	switch {
	case errors.Is(err, errOutcomeUnknown):
		b.Logger().Warn("Auth0's answer to rotate-secret was lost; reading the application's secret back", "role", name, "client_id", role.ClientID, "error", err)
		version, rerr := b.recoverLocked(s, name, role, conn)
		if rerr != nil {
			msg := fmt.Sprintf("%s: %v; reading the secret back from Auth0 failed too (%v); Vault keeps retrying until it holds the secret Auth0 accepts", what, err, rerr)
			b.recordFailure(ctx, s, name, role, msg, now)
			return nil, nil, logical.CodedError(http.StatusBadGateway, msg)
		}
		b.deleteWAL(s, walID)
		if version != nil {
			return version, nil, nil
		}
		// Auth0 had not applied it: an ordinary failure.
	case err != nil:
		b.deleteWAL(s, walID)
	}
	if err != nil {
		resp, rerr := auth0Failure(what, err)
		b.recordFailure(ctx, s, name, role, failureMessage(resp, rerr), now)
		return nil, resp, rerr
	}

	version, err := b.storeVersion(s, name, role, secret, source, now)
	if err != nil {
		b.Logger().Error("Auth0 rotated the secret but Vault could not store it; it will be read back from Auth0 by reconciliation",
			"role", name, "client_id", role.ClientID, "error", err)
		return nil, nil, fmt.Errorf("Auth0 rotated the secret of role %q but storing it failed (%w); Vault will read it back from Auth0 and store it", name, err)
	}
	b.deleteWAL(s, walID)
	b.Logger().Info("rotated client secret", "role", name, "client_id", role.ClientID, "version", version.Version, "source", source)
	return version, nil, nil
}

// storeVersion adds secret to role as its next version and stores the role: the one place
// a version is stored. Transient storage errors are retried a few times, on the backend's
// context for the same reason as the rotation itself.
func (b *backend) storeVersion(s logical.Storage, name string, role *roleEntry, secret, source string, now time.Time) (*secretVersion, error) {
	version := role.addVersion(secret, source, now)
	role.LastVaultRotation = now
	role.NextVaultRotation = role.nextRotation(now)
	role.LastFailure = nil
	if source != sourceRecovered {
		role.Warning = ""
	}
	var err error
	for attempt := 0; attempt < storeAttempts; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		if err = saveRole(b.ctx, s, name, role); err == nil {
			return version, nil
		}
	}
	return nil, err
}

// recordFailure notes a failed rotation on the role, best effort: the failure itself is
// what the caller reports.
func (b *backend) recordFailure(ctx context.Context, s logical.Storage, name string, role *roleEntry, msg string, now time.Time) {
	failures := 1
	if role.LastFailure != nil {
		failures = role.LastFailure.ConsecutiveFailures + 1
	}
	role.LastFailure = &rotationFailure{Time: now, Message: msg, ConsecutiveFailures: failures}
	if err := saveRole(ctx, s, name, role); err != nil {
		b.Logger().Warn("could not record the rotation failure on the role", "role", name, "error", err)
	}
	b.Logger().Warn("rotation failed", "role", name, "client_id", role.ClientID, "consecutive_failures", failures, "error", msg)
}

// failureMessage is the text of whichever of resp and err describes a failure.
func failureMessage(resp *logical.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if resp != nil && resp.Data != nil {
		if msg, ok := resp.Data["error"].(string); ok {
			return msg
		}
	}
	return "unknown error"
}
