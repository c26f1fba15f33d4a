package auth0

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// the new secret as the next version. On an Auth0 failure the role records it and the
// returned response or error says what happened; nothing else changes.
func (b *backend) rotateLocked(ctx context.Context, s logical.Storage, name string, role *roleEntry, source string) (*secretVersion, *logical.Response, error) {
	conn, resp, err := b.requireConnection(ctx, s)
	if resp != nil || err != nil {
		return nil, resp, err
	}

	// The call runs on the backend's context, not the request's: a caller that goes away
	// must not cut the exchange between Auth0's answer and our write of the new secret.
	secret, err := conn.client.RotateSecret(b.ctx, role.ClientID)
	now := time.Now().UTC()
	if err != nil {
		resp, rerr := auth0Failure(fmt.Sprintf("rotating the secret of role %q (client_id %q)", name, role.ClientID), err)
		b.recordFailure(ctx, s, name, role, failureMessage(resp, rerr), now)
		return nil, resp, rerr
	}

	version := role.addVersion(secret, source, now)
	role.LastVaultRotation = now
	role.NextVaultRotation = role.nextRotation(now)
	role.LastFailure = nil
	if err := b.storeRotatedRole(s, name, role); err != nil {
		b.Logger().Error("Auth0 rotated the secret but Vault could not store it; the application's new secret is not served",
			"role", name, "client_id", role.ClientID, "version", version.Version, "error", err)
		return nil, nil, fmt.Errorf("Auth0 rotated the secret of role %q but storing version %d failed: %w", name, version.Version, err)
	}
	b.Logger().Info("rotated client secret", "role", name, "client_id", role.ClientID, "version", version.Version, "source", source)
	return version, nil, nil
}

// storeRotatedRole writes a role that holds a freshly rotated secret, retrying transient
// storage errors a few times. It uses the backend's context for the same reason as
// rotateRole.
func (b *backend) storeRotatedRole(s logical.Storage, name string, role *roleEntry) error {
	var err error
	for attempt := 0; attempt < storeAttempts; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		if err = saveRole(b.ctx, s, name, role); err == nil {
			return nil
		}
	}
	return err
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
