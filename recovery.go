package auth0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/auth0/go-auth0/management"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// walKindRotation marks a write-ahead log entry for a rotate-secret call in flight.
const walKindRotation = "rotation"

// walRollbackMinAge is how old an entry must be before Vault's rollback manager (about once
// a minute, on the active node) hands it to walRollback. A younger one may belong to a
// rotation still in flight; that would be harmless, since reconciling takes the role's
// lock, but pointless.
const walRollbackMinAge = 30 * time.Second

// rotationWAL is written before rotate-secret is called and deleted once the outcome is
// stored. One left behind means Auth0 may hold a secret Vault does not.
type rotationWAL struct {
	Role     string `json:"role"`
	ClientID string `json:"client_id"`
}

// recoveryWait bounds how long a creds read waits for its role's reconciliation at start.
const recoveryWait = 10 * time.Second

const scopeWarning = "after an interrupted rotation Vault could not read the application's secret back from Auth0 and rotated it again to recover; grant the read:client_keys scope to the Management API application so that recovery never needs another rotation"

// recoverLocked makes the role hold the secret Auth0 accepts, after a rotation whose outcome
// is unknown. It reads the secret back (read:client_keys) and, if it is not the latest
// version, stores it as a new version with source "recovered". Without that scope it
// rotates again and stores the result, and warns on the role. It returns the stored
// version, or nil if the role already held Auth0's secret. The caller holds the role's lock.
func (b *backend) recoverLocked(s logical.Storage, name string, role *roleEntry, conn *connection) (*secretVersion, error) {
	info, err := conn.client.ReadClient(b.ctx, role.ClientID, true)
	var secret string
	switch {
	case err == nil:
		if latest := role.latest(); latest != nil && latest.Secret == info.Secret {
			return nil, nil
		}
		secret = info.Secret
	case lacksReadClientKeys(err):
		b.Logger().Warn("cannot read the application's secret back from Auth0 (grant read:client_keys); rotating again to recover", "role", name, "client_id", role.ClientID)
		if secret, err = conn.client.RotateSecret(b.ctx, role.ClientID); err != nil {
			return nil, fmt.Errorf("rotating again to recover: %w", err)
		}
		role.Warning = scopeWarning
	default:
		return nil, fmt.Errorf("reading the secret back from Auth0: %w", err)
	}
	version, err := b.storeVersion(s, name, role, secret, sourceRecovered, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("storing the recovered secret: %w", err)
	}
	b.Logger().Info("recovered the application's secret from Auth0", "role", name, "client_id", role.ClientID, "version", version.Version)
	return version, nil
}

// lacksReadClientKeys reports whether err means the Management API application may not
// read client secrets.
func lacksReadClientKeys(err error) bool {
	var mErr management.Error
	return errors.Is(err, errNoSecretScope) || (errors.As(err, &mErr) && mErr.Status() == http.StatusForbidden)
}

// reconcile finishes a rotation left in flight by a crash or a lost answer.
func (b *backend) reconcile(ctx context.Context, s logical.Storage, w rotationWAL) error {
	lock := b.roleLock(w.Role)
	lock.Lock()
	defer lock.Unlock()

	role, err := loadRole(ctx, s, w.Role)
	if err != nil {
		return err
	}
	if role == nil || role.ClientID != w.ClientID {
		return nil // deleted, or recreated for another application: nothing to finish
	}
	conn, err := b.connection(ctx, s)
	if err != nil {
		return err
	}
	if conn == nil {
		return errors.New("the engine is not configured; cannot reach Auth0")
	}
	if _, err := b.recoverLocked(s, w.Role, role, conn); err != nil {
		return err
	}
	b.schedule(w.Role, role)
	return nil
}

// walRollback is the framework's hook for entries Vault's rollback manager finds; returning
// nil lets the framework delete the entry.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != walKindRotation {
		return nil
	}
	w, err := decodeRotationWAL(data)
	if err != nil {
		return err
	}
	return b.reconcile(ctx, req.Storage, w)
}

// pendingRotation is a rotation log entry found in storage.
type pendingRotation struct {
	id  string
	wal rotationWAL
}

// pendingRotations lists the rotations left in flight.
func (b *backend) pendingRotations(ctx context.Context, s logical.Storage) ([]pendingRotation, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("listing rotations left in flight: %w", err)
	}
	var pending []pendingRotation
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err != nil || entry == nil || entry.Kind != walKindRotation {
			continue
		}
		w, err := decodeRotationWAL(entry.Data)
		if err != nil {
			b.Logger().Error("ignoring an unreadable rotation log entry", "id", id, "error", err)
			continue
		}
		pending = append(pending, pendingRotation{id: id, wal: w})
	}
	return pending, nil
}

// holdCreds makes creds reads of the pending rotations' roles wait until they are
// reconciled (awaitRecovery): until then the stored latest version may be a secret Auth0
// has already replaced.
func (b *backend) holdCreds(pending []pendingRotation) {
	for _, p := range pending {
		b.recovering.LoadOrStore(p.wal.Role, make(chan struct{}))
	}
}

// releaseCreds lets creds reads of role go on, reconciled or not.
func (b *backend) releaseCreds(role string) {
	if ch, ok := b.recovering.LoadAndDelete(role); ok {
		close(ch.(chan struct{}))
	}
}

// awaitRecovery waits, for at most recoveryWait, while role has a rotation left in flight
// by a crash that the start of this mount has not reconciled yet. For every other role it
// is a single lookup in an empty map.
func (b *backend) awaitRecovery(ctx context.Context, role string) {
	ch, ok := b.recovering.Load(role)
	if !ok {
		return
	}
	t := time.NewTimer(recoveryWait)
	defer t.Stop()
	select {
	case <-ch.(chan struct{}):
	case <-t.C:
	case <-ctx.Done():
	}
}

// reconcilePending finishes the given rotations left in flight, deleting each entry once
// done, and releases the creds reads that wait for them whatever the outcome.
func (b *backend) reconcilePending(ctx context.Context, s logical.Storage, pending []pendingRotation) {
	for _, p := range pending {
		if err := b.reconcile(ctx, s, p.wal); err != nil {
			b.Logger().Error("could not reconcile a rotation left in flight; will retry", "role", p.wal.Role, "error", err)
		} else {
			b.deleteWAL(s, p.id)
		}
		b.releaseCreds(p.wal.Role)
	}
}

func decodeRotationWAL(data interface{}) (rotationWAL, error) {
	var w rotationWAL
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, &w)
	}
	if err == nil && w.Role == "" {
		err = errors.New("no role")
	}
	if err != nil {
		return w, fmt.Errorf("decoding a rotation log entry: %w", err)
	}
	return w, nil
}

// deleteWAL removes a finished rotation's entry. Failing is harmless: reconciling an entry
// whose rotation was stored finds nothing to do.
func (b *backend) deleteWAL(s logical.Storage, id string) {
	if err := framework.DeleteWAL(b.ctx, s, id); err != nil {
		b.Logger().Warn("could not delete a finished rotation's log entry; reconciliation will find nothing to do", "error", err)
	}
}
