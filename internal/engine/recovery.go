package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// walKindRotation marks a write-ahead log entry for a rotate-secret call in flight.
const WALKindRotation = "rotation"

// walRollbackMinAge is how old an entry must be before Vault's rollback manager (about once
// a minute, on the active node) hands it to walRollback. A younger one may belong to a
// rotation still in flight; that is harmless, since reconciling takes the role's lock and
// then finds the entry gone, but pointless.
const WALRollbackMinAge = 30 * time.Second

// RotationWAL is written right before rotate-secret is sent and deleted once the outcome is
// stored. One left behind means Auth0 may hold a secret Vault does not.
type RotationWAL struct {
	Role     string `json:"role"`
	ClientID string `json:"client_id"`
	// BaseVersion is the role's current version when the rotation started; the rotation's
	// secret, once stored, is version BaseVersion+1.
	BaseVersion int `json:"base_version"`
	// Source is how the version is recorded if the answer was received and stored.
	Source string `json:"source,omitempty"`
	// PriorSecretHash is the SHA-256 of the secret Auth0 held before the rotation, for a
	// role that held none yet: reading the secret back after a lost answer then tells
	// whether Auth0 applied the rotation. Never the secret itself.
	PriorSecretHash string `json:"prior_secret_hash,omitempty"`
}

// secretHash is how a write-ahead entry refers to a secret without holding it.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// PendingRotation is a rotation log entry found in storage.
type PendingRotation struct {
	ID  string
	WAL RotationWAL
}

// recoveryWait bounds how long a creds read waits for its role's reconciliation at start.
const recoveryWait = 10 * time.Second

const scopeWarning = "after an interrupted rotation Vault could not read the application's secret back from Auth0 and rotated it again to recover; grant the read:client_keys scope to the Management API application so that recovery never needs another rotation"

// resolveRoleWALs resolves every rotation of role name left in flight. The caller holds
// the role's lock, so no live rotation owns any entry found here.
func (b *Engine) resolveRoleWALs(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	pending, err := b.PendingRotations(ctx, s)
	if err != nil {
		return err
	}
	for _, p := range pending {
		if p.WAL.Role != name {
			continue
		}
		if _, err := b.resolveWALLocked(ctx, s, name, role, p); err != nil {
			return err
		}
	}
	return nil
}

// resolveWALLocked decides one rotation left in flight and deletes its entry once the role
// holds the secret Auth0 accepts. It returns the version it stored, if any. In order:
//
//   - the role is gone or manages another application: nothing to finish;
//   - a version records the entry: the commit completed, only the delete was lost;
//   - the secret entry of version BaseVersion+1 records it: Auth0 answered and Vault
//     stored the secret, but a crash cut the commit short: the commit is finished;
//   - otherwise Auth0 may hold a secret Vault never saw: it is read back (recoverLocked).
func (b *Engine) resolveWALLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, p PendingRotation) (*model.VersionMeta, error) {
	w := p.WAL
	if role == nil || role.ClientID != w.ClientID {
		b.deleteWAL(s, p.ID)
		return nil, nil
	}
	for _, v := range role.Versions {
		if v.WALID == p.ID {
			b.deleteWAL(s, p.ID)
			return nil, nil
		}
	}
	if role.CurrentVersion() == w.BaseVersion {
		sec, err := model.LoadSecret(ctx, s, name, nil, w.BaseVersion+1)
		if err != nil {
			return nil, err
		}
		if sec != nil && sec.WALID == p.ID {
			version, err := b.CommitVersion(s, name, role, sec.Secret, sec.Source, p.ID, sec.CreatedTime)
			if err != nil {
				return nil, fmt.Errorf("finishing the storage of a rotated secret: %w", err)
			}
			b.deleteWAL(s, p.ID)
			b.logger().Info("finished storing a rotation a crash interrupted", "role", name, "version", version.Version)
			return version, nil
		}
	}
	conn, err := b.Connection(ctx, s)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New(errNotConfigured)
	}
	version, err := b.recoverLocked(ctx, s, name, role, conn, p.ID, w.PriorSecretHash)
	if err != nil {
		return nil, err
	}
	b.deleteWAL(s, p.ID)
	return version, nil
}

// recoverLocked makes the role hold the secret Auth0 accepts, after a rotation whose outcome
// is unknown. It reads the secret back (read:client_keys) and, if it is not the current
// version's, stores it as a new version with source "recovered". Without that scope it
// rotates again and stores the result, and warns on the role. It returns the stored
// version, or nil if the role already held Auth0's secret.
func (b *Engine) recoverLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, conn *connection, walID, priorHash string) (*model.VersionMeta, error) {
	info, err := conn.Client.ReadClient(ctx, role.ClientID, true)
	var secret string
	switch {
	case err == nil:
		if priorHash != "" && role.CurrentVersion() == 0 && secretHash(info.Secret) == priorHash {
			return nil, nil // Auth0 still holds the secret it held before: nothing applied
		}
		if n := role.CurrentVersion(); n > 0 {
			cur, err := model.LoadSecret(ctx, s, name, role, n)
			if err != nil {
				return nil, err
			}
			if cur != nil && cur.Secret == info.Secret {
				return nil, nil
			}
		}
		secret = info.Secret
	case lacksReadClientKeys(err):
		b.logger().Warn("cannot read the application's secret back from Auth0 (grant read:client_keys); rotating again to recover", "role", name, "client_id", role.ClientID)
		// The entry being resolved still covers this rotation: it is deleted only once
		// the result is stored.
		if secret, err = conn.Client.RotateSecret(ctx, role.ClientID, nil); err != nil {
			return nil, fmt.Errorf("rotating again to recover: %w", err)
		}
		role.Warning = scopeWarning
	default:
		return nil, fmt.Errorf("reading the secret back from Auth0: %w", err)
	}
	version, err := b.CommitVersion(s, name, role, secret, model.SourceRecovered, walID, b.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("storing the recovered secret: %w", err)
	}
	b.logger().Info("recovered the application's secret from Auth0", "role", name, "client_id", role.ClientID, "version", version.Version)
	return version, nil
}

// lacksReadClientKeys reports whether err means the Management API application may not
// read client secrets.
func lacksReadClientKeys(err error) bool {
	return errors.Is(err, auth0api.ErrNoSecretScope) || auth0api.ManagementStatus(err) == http.StatusForbidden
}

// walRollback is the framework's hook for entries Vault's rollback manager finds; returning
// nil lets the framework delete the entry. It resolves the entry's role through the role's
// job, like every other path that may change Auth0.
func (b *Engine) RollbackWAL(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != WALKindRotation && kind != WALKindRoleWrite {
		return nil
	}
	if !b.host.WriteSafeReplicationState() {
		return errors.New("rotations and role writes left in flight are resolved where storage is writable (the active node of the primary cluster)")
	}
	if kind == WALKindRoleWrite {
		w, err := decodeRoleWriteWAL(data)
		if err != nil {
			return err
		}
		return b.repairRoleWrite(ctx, req.Storage, w.Role, nil)
	}
	w, err := DecodeRotationWAL(data)
	if err != nil {
		return err
	}
	_, _, resp, err := b.runRoleJob(ctx, req.Storage, w.Role, TriggerReconcile)
	switch {
	case errors.Is(err, ErrRoleNotFound):
		return nil
	case err == nil && resp != nil && resp.IsError():
		return resp.Error()
	}
	return err
}

// PendingRotations lists the rotations left in flight. An entry that cannot be read is an
// error (the caller retries); one that cannot be decoded is reported and skipped.
func (b *Engine) PendingRotations(ctx context.Context, s logical.Storage) ([]PendingRotation, error) {
	var pending []PendingRotation
	err := b.eachWAL(ctx, s, WALKindRotation, func(id string, data interface{}) {
		w, err := DecodeRotationWAL(data)
		if err != nil {
			b.logger().Error("ignoring an unreadable rotation log entry", "id", id, "error", err)
			return
		}
		pending = append(pending, PendingRotation{ID: id, WAL: w})
	})
	return pending, err
}

// eachWAL calls fn with every write-ahead entry of kind.
func (b *Engine) eachWAL(ctx context.Context, s logical.Storage, kind string, fn func(id string, data interface{})) error {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing write-ahead entries: %w", err)
	}
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return fmt.Errorf("reading write-ahead entry %s: %w", id, err)
		}
		if entry != nil && entry.Kind == kind {
			fn(id, entry.Data)
		}
	}
	return nil
}

// holdCreds makes creds reads of the pending rotations' roles wait until they are
// reconciled (awaitRecovery): until then what creds would serve may be a secret Auth0 has
// already replaced.
func (b *Engine) holdCreds(pending []PendingRotation) {
	for _, p := range pending {
		b.holdRole(p.WAL.Role)
	}
}

// holdRole makes reads of role wait (awaitRecovery) until releaseCreds.
func (b *Engine) holdRole(role string) {
	b.recovering.LoadOrStore(role, make(chan struct{}))
}

// releaseCreds lets creds reads of role go on, reconciled or not.
func (b *Engine) releaseCreds(role string) {
	if ch, ok := b.recovering.LoadAndDelete(role); ok {
		close(ch.(chan struct{}))
	}
}

// AwaitRecovery waits, for at most recoveryWait, while role has a rotation left in flight
// by a crash that the start of this mount has not reconciled yet. For every other role it
// is a single lookup in an empty map.
func (b *Engine) AwaitRecovery(ctx context.Context, role string) {
	ch, ok := b.recovering.Load(role)
	if !ok {
		return
	}
	// Real time, not the engine's clock: this bounds how long a request waits for work in
	// progress, it decides nothing.
	timer := time.NewTimer(recoveryWait)
	defer timer.Stop()
	select {
	case <-ch.(chan struct{}):
	case <-timer.C:
	case <-ctx.Done():
	}
}

// ReconcilePending resolves the roles of the given rotations left in flight, each through
// its role's job, and releases the creds reads that wait for them whatever the outcome: a
// failure is recorded on the role, and its next job resolves the entry first.
func (b *Engine) ReconcilePending(ctx context.Context, s logical.Storage, pending []PendingRotation) {
	gone := make(map[string]bool)
	done := make(map[string]bool)
	for _, p := range pending {
		role := p.WAL.Role
		switch {
		case gone[role]:
			b.deleteWAL(s, p.ID)
			continue
		case done[role]:
			continue
		}
		done[role] = true
		_, _, resp, err := b.runRoleJob(ctx, s, role, TriggerReconcile)
		switch {
		case errors.Is(err, ErrRoleNotFound):
			gone[role] = true
			b.deleteWAL(s, p.ID)
		case err != nil:
			b.logger().Error("could not reconcile a rotation left in flight; will retry", "role", role, "error", err)
		case resp != nil && resp.IsError():
			b.logger().Error("could not reconcile a rotation left in flight; will retry", "role", role, "error", resp.Error())
		}
		b.releaseCreds(role)
	}
}

func DecodeRotationWAL(data interface{}) (RotationWAL, error) {
	var w RotationWAL
	if err := decodeWAL(data, &w, &w.Role); err != nil {
		return w, fmt.Errorf("decoding a rotation log entry: %w", err)
	}
	return w, nil
}

// decodeWAL decodes a write-ahead entry's data (as the framework hands it over, a map)
// into w, whose role must then be set.
func decodeWAL(data, w interface{}, role *string) error {
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, w)
	}
	if err == nil && *role == "" {
		err = errors.New("no role")
	}
	return err
}

// deleteWAL removes a finished step's write-ahead entry. Failing is harmless: resolving an
// entry whose step was stored finds it done and does nothing more.
func (b *Engine) deleteWAL(s logical.Storage, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), commitTimeout)
	defer cancel()
	if err := framework.DeleteWAL(ctx, s, id); err != nil {
		b.logger().Warn("could not delete a finished step's write-ahead entry; resolving it later finds nothing to do", "error", err)
	}
}

// walKindRoleWrite marks a write-ahead log entry for a role write in flight: creds carry
// the role's definition to the read path, so a write changes two entries, creds first.
const WALKindRoleWrite = "role-write"

// roleWriteWAL is written before a role write stores creds and deleted once the role is
// stored. One left behind means creds may carry a definition the role does not have.
type roleWriteWAL struct {
	Role string `json:"role"`
}

// StoreRoleWrite stores the role a role write changed, and creds to match, as one step: a
// crash between the two leaves a write-ahead entry, and the next start (or Vault's rollback
// manager) writes creds again from the role that is stored, which undoes the cut write. A
// write that fails writes creds again from the role stored (whether the failed write landed
// or not) and drops the tokens readers may have fetched meanwhile; its entry stays only if
// that failed too.
func (b *Engine) StoreRoleWrite(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	id, err := framework.PutWAL(ctx, s, WALKindRoleWrite, &roleWriteWAL{Role: name})
	if err != nil {
		return fmt.Errorf("storing the write-ahead entry of the role write: %w", err)
	}
	if err := b.StoreRoleState(ctx, s, name, role); err != nil {
		b.Tokens.DropRole(name)
		if rerr := b.repairRoleWriteLocked(ctx, s, name); rerr == nil {
			b.deleteWAL(s, id)
		}
		return err
	}
	b.deleteWAL(s, id)
	return nil
}

// pendingRoleWrites lists the roles whose write a crash may have cut, with their entries.
func (b *Engine) pendingRoleWrites(ctx context.Context, s logical.Storage) (map[string][]string, error) {
	pending := make(map[string][]string)
	err := b.eachWAL(ctx, s, WALKindRoleWrite, func(id string, data interface{}) {
		w, err := decodeRoleWriteWAL(data)
		if err != nil {
			b.logger().Error("ignoring an unreadable role write log entry", "id", id, "error", err)
			return
		}
		pending[w.Role] = append(pending[w.Role], id)
	})
	return pending, err
}

// repairRoleWrite makes creds of name carry the stored role's definition again, after a
// role write a crash may have cut, then deletes the write's entries. It does nothing more
// for a role that is gone: a delete removes creds before the role.
func (b *Engine) repairRoleWrite(ctx context.Context, s logical.Storage, name string, ids []string) error {
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()
	if err := b.repairRoleWriteLocked(ctx, s, name); err != nil {
		return err
	}
	for _, id := range ids {
		b.deleteWAL(s, id)
	}
	return nil
}

// repairRoleWriteLocked is repairRoleWrite for a caller that holds the role's lock, without
// deleting entries.
func (b *Engine) repairRoleWriteLocked(ctx context.Context, s logical.Storage, name string) error {
	defer b.Tokens.DropRole(name)
	role, err := model.LoadRole(ctx, s, name)
	if err != nil || role == nil {
		return err
	}
	return b.StoreRoleState(ctx, s, name, role)
}

// repairRoleWrites repairs every role write a crash may have cut, retrying until each is
// repaired, and lets reads of each role go on once it is, unless a rotation of the role is
// left in flight too (reconcilePending lets those go on).
func (b *Engine) repairRoleWrites(ctx context.Context, s logical.Storage, left inFlight) {
	release := func(name string) {
		if !slices.ContainsFunc(left.rotations, func(p PendingRotation) bool { return p.WAL.Role == name }) {
			b.releaseCreds(name)
		}
	}
	defer func() { // the mount stopping ends the retries: let every read go on
		for name := range left.roleWrites {
			release(name)
		}
	}()
	for name, ids := range left.roleWrites {
		err := b.retryUntil(ctx, "repairing a role write cut short", func() error {
			return b.repairRoleWrite(ctx, s, name, ids)
		})
		if err != nil {
			return
		}
		release(name)
	}
}

func decodeRoleWriteWAL(data interface{}) (roleWriteWAL, error) {
	var w roleWriteWAL
	if err := decodeWAL(data, &w, &w.Role); err != nil {
		return w, fmt.Errorf("decoding a role write log entry: %w", err)
	}
	return w, nil
}
