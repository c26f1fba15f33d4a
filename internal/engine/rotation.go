package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// What set a job going. The first two are also the source recorded on a version.
const (
	TriggerManual    = model.SourceRotate    // auth0/rotate/:name
	triggerScheduled = model.SourceScheduled // the role fell due in the queue
	// TriggerReconcile finishes rotations left in flight and changes nothing else.
	TriggerReconcile = "reconcile"
)

const (
	// maxInlineRateLimitWait is the longest 429 pause a manual rotation waits out inside
	// its request; a longer one is answered with a 429 saying when to try again.
	maxInlineRateLimitWait = 10 * time.Second
	// maxRateLimitedTries bounds a manual rotation's attempts through short 429 pauses.
	maxRateLimitedTries = 3
)

// ErrRoleNotFound is returned by a role job for a role that does not exist (any more).
var ErrRoleNotFound = errors.New("role not found")

const (
	// StoreAttempts bounds how often a rotated secret's write is retried: once Auth0 has
	// applied a rotation the new secret exists nowhere else, so a transient storage error
	// must not lose it.
	StoreAttempts = 5
	// commitTimeout bounds a commit after Auth0 answered. It runs on a context that the
	// mount's shutdown does not cancel, so that shutdown cannot cut it in half.
	commitTimeout = 10 * time.Second
)

// runRoleJob is the one path every rotation of a role takes, whatever set it going: a
// manual rotate, the schedule, a retry, or reconciliation. Under the role's lock it
//
//  1. skips a scheduled job that is not due (any more);
//  2. checks that the role owns its application;
//  3. resolves any rotation of the role left in flight, so that at most one Auth0
//     change per role is ever unresolved;
//  4. rotates at Auth0, writing the write-ahead entry right before the request leaves;
//  5. stores the outcome, or records the failure with its time, message and count,
//     and sets the next attempt after a capped exponential backoff.
//
// Whatever happens, the role is requeued at the time its stored state says.
func (b *Engine) runRoleJob(ctx context.Context, s logical.Storage, name, trigger string) (*model.RoleEntry, *model.VersionMeta, *logical.Response, error) {
	return b.RunRoleJobWith(ctx, s, name, trigger, RotateOptions{})
}

// RunRoleJobWith is runRoleJob with a manual rotate's options.
func (b *Engine) RunRoleJobWith(ctx context.Context, s logical.Storage, name, trigger string, opts RotateOptions) (*model.RoleEntry, *model.VersionMeta, *logical.Response, error) {
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()
	defer b.markRotating(name)()

	role, err := model.LoadRole(ctx, s, name)
	if err != nil {
		if trigger != TriggerManual {
			b.retryUnreadable(name, err)
		}
		return nil, nil, nil, err
	}
	if role == nil {
		b.Schedule(name, nil)
		return nil, nil, nil, ErrRoleNotFound
	}
	j := &roleJob{b: b, s: s, name: name, role: role, trigger: trigger, opts: opts, now: b.Clock.Now()}
	start := time.Now() // the job's duration, on the wall clock
	version, resp, err := j.run(ctx)
	b.Metrics.Job(kindLabel(KindFor(role.KindKey())), trigger, name, jobOutcome(version != nil, resp, err), time.Since(start))
	b.Schedule(name, j.role)
	return j.role, version, resp, err
}

// roleJob is one run of runRoleJob; its methods run under the role's lock.
type roleJob struct {
	b       *Engine
	s       logical.Storage
	name    string
	role    *model.RoleEntry
	trigger string
	opts    RotateOptions
	now     time.Time
	// hold is where the job keeps its state; nil: the role's entries (holder).
	hold credentialHolder
	// conn, if set, is the Management API connection the job uses instead of the mount's.
	conn *connection
}

func (j *roleJob) run(ctx context.Context) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	if role.Legacy() {
		if err := b.UpgradeRoleLocked(ctx, j.s, j.name, role); err != nil {
			return j.fail(ctx, nil, fmt.Errorf("moving role %q to the current storage layout: %w", j.name, err))
		}
	}
	kind := KindFor(role.KindKey())
	if resp := checkOptions(kind, j.name, j.opts); resp != nil {
		return nil, resp, nil
	}
	if j.trigger == triggerScheduled {
		due := DueTime(role, j.now)
		drift := retryingDrift(role) && !driftRetryTime(role).After(j.now)
		switch {
		case due.IsZero() || due.After(j.now):
			return nil, nil, nil
		case drift:
			// The retry of the rotation that takes back a drift: at once, whatever the
			// schedule or its window says, and a staged secret switches at once, as at the
			// check (CheckDrift).
			j.opts.SwitchNow = slices.Contains(kind.options(), "switch_now")
		case role.Staged == nil && role.PendingKey == nil && role.Overlap == nil && role.MissedWindow(j.now): // a published secret switches late rather than never
			return j.skipMissedWindow(ctx)
		}
	}
	if resp, err := j.checkOwner(ctx); resp != nil || err != nil {
		return nil, resp, err
	}
	return kind.run(ctx, j)
}

const errNotConfigured = "the engine is not configured yet; write the Management API credentials first: vault write <mount>/config domain=... client_id=... client_secret=..."

// checkOwner refuses to touch an application that is the mount's own Management API
// application or that another role owns; such a role is marked blocked until its
// operator acts.
func (j *roleJob) checkOwner(ctx context.Context) (*logical.Response, error) {
	conn, err := j.b.Connection(ctx, j.s)
	if err != nil {
		_, resp, err := j.fail(ctx, nil, err)
		return resp, err
	}
	var msg, owner string
	if conn != nil && !conn.Config.ClientAllowed(j.role.ClientID) {
		msg = model.NotAllowedClient(j.role.ClientID)
	} else if owner, err = j.b.claimApplication(ctx, j.s, j.name, j.role.ClientID); err != nil {
		_, resp, err := j.fail(ctx, nil, err)
		return resp, err
	} else if owner != "" {
		msg = model.OwnerBlocked(j.role.ClientID, owner)
	}
	if msg == "" {
		if j.role.Blocked != "" && j.role.ScheduleProblem(j.now) == "" {
			j.role.Blocked = "" // the conflict is gone (the other role was deleted)
			if err := j.b.StoreRoleState(ctx, j.s, j.name, j.role); err != nil {
				_, resp, err := j.fail(ctx, nil, err)
				return resp, err
			}
		}
		return nil, nil
	}
	if j.role.Blocked != msg {
		j.role.Blocked = msg
		if err := j.b.StoreRoleState(ctx, j.s, j.name, j.role); err != nil {
			j.b.logger().Warn("could not record on the role why it is blocked", "role", j.name, "error", err)
		}
		if owner != "" {
			j.b.logger().Error("role not rotated: its application belongs to another owner", "role", j.name, "client_id", j.role.ClientID, "owner", owner)
		} else {
			j.b.logger().Error("role not rotated: its application is not in the mount's allowed_client_ids", "role", j.name, "client_id", j.role.ClientID)
		}
	}
	return logical.ErrorResponse("role %q: %s", j.name, msg), nil
}

// skipMissedWindow moves a role whose rotation window passed to its next scheduled time.
func (j *roleJob) skipMissedWindow(ctx context.Context) (*model.VersionMeta, *logical.Response, error) {
	role := j.role
	missed := role.NextVaultRotation
	role.NextVaultRotation = role.NextRotation(j.now)
	role.NextAttempt = time.Time{}
	if err := j.b.StoreRoleState(ctx, j.s, j.name, role); err != nil {
		return j.fail(ctx, nil, err)
	}
	j.b.logger().Warn("rotation window missed; waiting for the next scheduled time", "role", j.name, "missed", missed, "next", role.NextVaultRotation)
	return nil, nil, nil
}

// fail records a failed attempt on the role: time, message, consecutive count and the next
// attempt after backoff. Recording is best effort (storage may be what failed); the
// backoff holds in memory all the same, since the role is requeued from j.role.
func (j *roleJob) fail(ctx context.Context, resp *logical.Response, err error) (*model.VersionMeta, *logical.Response, error) {
	msg := failureMessage(resp, err)
	j.role.Fail(msg, j.b.Clock.Now(), j.b.backoff)
	if serr := j.holder().storeState(ctx, j.role); serr != nil {
		j.b.logger().Warn("could not record the rotation failure on the role", "role", j.name, "error", serr)
	}
	j.b.logger().Warn("rotation failed", "role", j.name, "client_id", j.role.ClientID, "trigger", j.trigger,
		"consecutive_failures", j.role.LastFailure.ConsecutiveFailures, "next_attempt", j.role.NextAttempt.Format(time.RFC3339), "error", msg)
	return nil, resp, err
}

// backoff is the delay before the next attempt after failures consecutive failures.
func (b *Engine) backoff(failures int) time.Duration {
	return model.RetryDelay(failures, b.retryBase, b.retryCap, b.Jitter)
}

// CommitVersion stores secret as the role's next version: the secret entry first (the
// durable record of what Auth0 answered, tied to the rotation's write-ahead entry walID),
// then what creds serves, then the role entry, which is the commit point. Every step is
// idempotent, so the sequence is retried whole on a storage error; on success role is
// updated in place.
func (b *Engine) CommitVersion(s logical.Storage, name string, role *model.RoleEntry, secret, source, walID string, now time.Time) (*model.VersionMeta, error) {
	return b.commit(s, name, role, secret, model.VersionMeta{Source: source, WALID: walID}, now)
}

// commit is commitVersion for a version described by info (its source, write-ahead entry
// and, for a staged secret, when it was staged and how the switch was checked). It also
// ends the role's staged state: a committed version is no longer next.
func (b *Engine) commit(s logical.Storage, name string, role *model.RoleEntry, secret string, info model.VersionMeta, now time.Time) (*model.VersionMeta, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), commitTimeout)
	defer cancel()
	source, walID := info.Source, info.WALID

	next := role.Clone()
	next.Staged = nil
	meta, dropped := next.AddVersion(info, now)
	if source != model.SourceImport { // an imported secret was not rotated by Vault
		next.LastVaultRotation = now.UTC()
	}
	next.NextVaultRotation = nextAfterRotation(role, now)
	next.Succeed()
	if source != model.SourceRecovered {
		next.Warning = ""
	}
	creds := &model.CredsEntry{Current: &model.SecretEntry{Version: meta.Version, Secret: secret, CreatedTime: meta.CreatedTime, Source: source, WALID: walID}}
	CredsMeta(next, creds)

	if err := b.storeVersion(ctx, s, name, role, next, creds, len(dropped) > 0); err != nil {
		return nil, err
	}
	return meta, nil
}

// storeVersion stores a new version prepared in next, with what creds serve: the whole
// sequence of writes (writeVersion) is retried on a storage error, each step being
// idempotent. On success role becomes next, the role's cached tokens are dropped and, if
// the version pushed older ones out, their secrets are deleted.
func (b *Engine) storeVersion(ctx context.Context, s logical.Storage, name string, role, next *model.RoleEntry, creds *model.CredsEntry, prune bool) error {
	if err := b.retryStore(ctx, func() error { return b.writeVersion(ctx, s, name, role, next, creds) }); err != nil {
		return err
	}
	*role = *next
	b.Tokens.DropRole(name)
	if prune {
		b.PruneSecrets(ctx, s, name, role)
	}
	return nil
}

// retryStore runs the writes of a commit, whole, until they succeed, storeAttempts times
// at most, waiting a little longer after each failure; it answers the last error.
func (b *Engine) retryStore(ctx context.Context, write func() error) error {
	var err error
	for attempt := 0; attempt < StoreAttempts; attempt++ {
		if attempt > 0 {
			if serr := clock.Sleep(ctx, b.Clock, time.Duration(attempt)*200*time.Millisecond); serr != nil {
				break
			}
		}
		if err = write(); err == nil {
			return nil
		}
	}
	return err
}

// PruneSecrets deletes the secret entries of a role that it no longer retains: those
// max_versions dropped, including any an earlier prune failed to delete. Best effort, after
// the role entry that drops them is stored: a left-over entry is never served.
func (b *Engine) PruneSecrets(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) {
	keys, err := s.List(ctx, model.SecretsDir(name))
	if err != nil {
		b.logger().Warn("could not list a role's secrets to delete those it no longer retains", "role", name, "error", err)
		return
	}
	for _, k := range keys {
		n, err := strconv.Atoi(k)
		if err != nil || role.Version(n) != nil || role.Staged != nil && role.Staged.Version == n || n > role.CurrentVersion() {
			continue
		}
		if err := model.DeleteKey(ctx, s, model.SecretsDir(name)+k); err != nil {
			b.logger().Warn("could not delete the secret of a version the role no longer retains", "role", name, "version", n, "error", err)
		}
	}
}

// writeVersion is one attempt of commitVersion's writes.
func (b *Engine) writeVersion(ctx context.Context, s logical.Storage, name string, old, next *model.RoleEntry, creds *model.CredsEntry) error {
	if err := model.SaveSecret(ctx, s, name, creds.Current); err != nil {
		return err
	}
	if prev := creds.Current.Version - 1; creds.Previous == nil && next.Version(prev) != nil && KindFor(next.KindKey()).servesPrevious(next, prev) {
		sec, err := model.LoadSecret(ctx, s, name, old, prev)
		if err != nil {
			return err
		}
		creds.Previous = sec
	}
	if err := b.putCreds(ctx, s, name, creds); err != nil {
		return err
	}
	return model.SaveRole(ctx, s, name, next)
}

// StoreRoleState stores a change to the role's definition or state (not a new version),
// and keeps what creds serves in step with it.
// What creds serves is written first and the role entry last, as in a commit: a failure
// in between leaves the old role, never a creds entry behind it (serving a previous
// version the role no longer retains, say).
func (b *Engine) StoreRoleState(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	old, err := model.LoadCreds(ctx, s, name)
	if err != nil {
		return err
	}
	if old != nil {
		creds := *old
		CredsMeta(role, &creds)
		if creds.Previous != nil && role.Version(creds.Previous.Version) == nil {
			creds.Previous = nil // max_versions no longer retains it
		}
		if st := role.Staged; st != nil && (creds.Next == nil || creds.Next.Version != st.Version) {
			// Publish the staged secret again, should an interrupted write have lost it.
			if creds.Next, err = model.LoadSecret(ctx, s, name, nil, st.Version); err != nil {
				return err
			}
		}
		if err := b.putCreds(ctx, s, name, &creds); err != nil {
			return err
		}
	}
	if err := model.SaveRole(ctx, s, name, role); err != nil {
		if old != nil {
			// Put creds back as they were, so that the failed change is not half-stored.
			if rerr := b.putCreds(ctx, s, name, old); rerr != nil {
				b.logger().Warn("could not restore creds after a failed role write; the next write of the role repairs them", "role", name, "error", rerr)
			}
		}
		return err
	}
	return nil
}

// claimApplication makes role name the owner of clientID on this mount, unless the
// application is the mount's own Management API application ("config") or another
// existing role owns it: then it returns that owner. A claim whose role is gone or now
// manages another application is stale and taken over. ownerMu makes check and claim one
// step, so two concurrent writes cannot both win.
func (b *Engine) claimApplication(ctx context.Context, s logical.Storage, name, clientID string) (string, error) {
	b.OwnerMu.Lock()
	defer b.OwnerMu.Unlock()
	return ClaimApplicationLocked(ctx, s, name, clientID)
}

// ClaimApplicationLocked is claimApplication for a caller that holds ownerMu, as a role
// write does until the role is stored: a claim counts only while its role exists, so the
// claim and the new role must appear as one step.
func ClaimApplicationLocked(ctx context.Context, s logical.Storage, name, clientID string) (string, error) {
	cfg, err := model.LoadConfig(ctx, s)
	if err != nil {
		return "", err
	}
	if cfg != nil && cfg.ClientID == clientID {
		return model.OwnerConfig, nil
	}
	owner, err := LiveOwner(ctx, s, clientID)
	switch {
	case err != nil || owner == name:
		return "", err
	case owner != "":
		return owner, nil
	}
	return "", model.SaveOwner(ctx, s, clientID, name)
}

// LiveOwner is the role that owns clientID, "" if none does: a claim whose role is gone or
// now manages another application (a delete cut short) does not count. The caller holds
// ownerMu.
func LiveOwner(ctx context.Context, s logical.Storage, clientID string) (string, error) {
	owner, err := model.LoadOwner(ctx, s, clientID)
	if err != nil || owner == "" {
		return "", err
	}
	role, err := model.LoadRole(ctx, s, owner)
	if err != nil || role == nil || role.ClientID != clientID {
		return "", err
	}
	return owner, nil
}

// ReleaseApplication drops role name's claim on clientID, if it holds it.
func (b *Engine) ReleaseApplication(ctx context.Context, s logical.Storage, name, clientID string) error {
	b.OwnerMu.Lock()
	defer b.OwnerMu.Unlock()
	return releaseApplicationLocked(ctx, s, name, clientID)
}

// UndoFailedCreate is called by a create whose storage writes failed, holding the role's
// lock and OwnerMu: unless its role entry was stored after all, what it stored for creds
// (an import's secret too) goes with its claim on the application, so that creds and
// token/ serve nothing of a role that does not exist. If that fails too, a delete of the
// role removes the leftovers.
func (b *Engine) UndoFailedCreate(ctx context.Context, s logical.Storage, name, clientID string) {
	b.Tokens.ForgetRole(name)
	err := func() error {
		role, err := model.LoadRole(ctx, s, name)
		if err != nil || role != nil {
			return err
		}
		if err := b.DeleteRoleData(ctx, s, name); err != nil {
			return err
		}
		return releaseApplicationLocked(ctx, s, name, clientID)
	}()
	if err != nil {
		b.logger().Warn("could not remove what a failed create stored; deleting the role removes it", "role", name, "error", err)
	}
}

// releaseApplicationLocked is ReleaseApplication for a caller that holds OwnerMu.
func releaseApplicationLocked(ctx context.Context, s logical.Storage, name, clientID string) error {
	owner, err := model.LoadOwner(ctx, s, clientID)
	if err != nil || owner != name {
		return err
	}
	return model.DeleteKey(ctx, s, model.OwnerKey(clientID))
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

// CredsMeta copies into c the role's state that creds reports.
func CredsMeta(r *model.RoleEntry, c *model.CredsEntry) {
	c.ClientID = r.ClientID
	c.RotationPeriod = r.RotationPeriod
	c.RotationSchedule = r.RotationSchedule
	c.NextVaultRotation = r.NextVaultRotation
	c.NextAttempt = r.NextAttempt
	c.Strategy = r.RotationStrategy
	c.CredentialType = r.CredentialType
	c.TokenAudiences, c.TokenScopes = r.TokenAudiences, r.TokenScopes
	c.AllowAssertions, c.AssertionTTL = r.AllowAssertions, r.AssertionTTL
	c.LastEvent, c.MaxTTL = r.LastEvent(), RoleMaxTTL(r)
	c.Halted = r.Blocked != ""
	c.StagePeriod, c.OverlapUntil, c.PublishAt = 0, time.Time{}, time.Time{}
	KindFor(r.KindKey()).credsMeta(r, c)
}

// nextChange is the next change of the credential a consumer of creds must see: the next
// rotation, publication, switch or key publication, or while rotations fail the next
// attempt, whichever is later. Zero when the role has no schedule, or is blocked.
func nextChange(c *model.CredsEntry) time.Time {
	if c.Halted {
		return time.Time{} // nothing happens until the operator acts
	}
	return KindFor(c.KindKey()).nextChange(c)
}

// DueTime is when the scheduler should next look at the role: its next rotation, or after
// a failure the next attempt if that is later, or what its kind has under way. Zero when
// it must not be queued: no schedule, blocked, or a due time that is missing or absurd
// (left by an older build).
func DueTime(r *model.RoleEntry, now time.Time) time.Time {
	if r.Blocked != "" {
		return time.Time{}
	}
	due := KindFor(r.KindKey()).dueTime(r, now)
	if retryingDrift(r) {
		if retry := driftRetryTime(r); due.IsZero() || retry.Before(due) {
			due = retry
		}
	}
	return due
}

// driftRetryTime is when the failed rotation that takes back a drift is retried: at
// next_attempt, or at once when a role write that changed the schedule reset it.
func driftRetryTime(r *model.RoleEntry) time.Time {
	return model.Later(r.LastFailure.Time, r.NextAttempt)
}

// retryingDrift reports whether the role's last rotation failed while drift is recorded
// on it with drift_action=rotate: the rotation that takes the credential back is retried
// at next_attempt, with backoff, as a failed scheduled rotation is, not at the next
// scheduled time (never, without a schedule) while applications hold a credential Auth0
// refuses. The role stays failing until then, so no drift check sets it going again. A
// pending key or an overlap has its own due time, the retries included.
func retryingDrift(r *model.RoleEntry) bool {
	return r.DriftAction == model.DriftActionRotate && r.DriftDetected != nil && r.LastFailure != nil &&
		r.PendingKey == nil && r.Overlap == nil
}

// BuildCreds assembles what creds serves from the role and its secret entries: used where
// creds/<name> is missing (a role not yet upgraded) and to write it anew.
func BuildCreds(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) (*model.CredsEntry, error) {
	cur := role.Current()
	if cur == nil {
		return nil, nil
	}
	c := &model.CredsEntry{}
	CredsMeta(role, c)
	var err error
	if c.Current, err = model.LoadSecret(ctx, s, name, role, cur.Version); err != nil {
		return nil, err
	}
	if c.Current == nil {
		return nil, fmt.Errorf("role %q: the secret of its current version %d is missing from storage", name, cur.Version)
	}
	if role.Version(cur.Version-1) != nil && KindFor(role.KindKey()).servesPrevious(role, cur.Version-1) {
		if c.Previous, err = model.LoadSecret(ctx, s, name, role, cur.Version-1); err != nil {
			return nil, err
		}
	}
	if role.Staged != nil {
		if c.Next, err = model.LoadSecret(ctx, s, name, nil, role.Staged.Version); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// DeleteRoleData removes everything stored for a role name except its metadata and
// ownership claim: what creds serves, then every version's secret.
func (b *Engine) DeleteRoleData(ctx context.Context, s logical.Storage, name string) error {
	err := model.DeleteKey(ctx, s, model.CredsKey(name))
	b.CredsCache.Invalidate(name)
	if err != nil {
		return err
	}
	keys, err := s.List(ctx, model.SecretsDir(name))
	if err != nil {
		return fmt.Errorf("listing the secrets of role %q: %w", name, err)
	}
	for _, k := range keys {
		if err := model.DeleteKey(ctx, s, model.SecretsDir(name)+k); err != nil {
			return err
		}
	}
	return nil
}

// rewriteCreds writes what creds serves anew from the role and its secret entries.
func (b *Engine) rewriteCreds(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	creds, err := BuildCreds(ctx, s, name, role)
	if err != nil || creds == nil {
		return err
	}
	return b.putCreds(ctx, s, name, creds)
}

// maxTTL is the role's max_ttl, or its default: defaultMaxTTL, or a quarter of the lead a
// consumer has on a manual rotation (stage_period, overlap_period) if that is shorter, so
// that consumers re-reading at ttl see a manually staged secret or key well before Auth0
// requires it.
func RoleMaxTTL(r *model.RoleEntry) time.Duration {
	if r.MaxTTL > 0 {
		return r.MaxTTL
	}
	d := model.DefaultMaxTTL
	if lead := ConsumerLead(r); lead > 0 && lead/4 < d {
		d = max(lead/4, model.MinMaxTTL)
	}
	return d
}

// ConsumerLead is how long consumers have between seeing a new credential and Auth0
// requiring it: stage_period for a staged role, overlap_period for a key role (while
// either key works), none for an immediate rotation.
func ConsumerLead(r *model.RoleEntry) time.Duration { return KindFor(r.KindKey()).consumerLead(r) }

// nextAfterRotation is the next scheduled rotation after one committed at now, r being
// the role before it. Consumers of creds that read before this rotation were told to read
// again at the next change they had to see then (its time, announced), or within max_ttl;
// had the next scheduled time come sooner than both, as after a rotation that ended a run
// of failures (they were told the next attempt, not the schedule), such a consumer would
// still hold the replaced credential when Auth0 already required the next one. So the next
// rotation comes no sooner than that: by then every consumer has read this one.
func nextAfterRotation(r *model.RoleEntry, now time.Time) time.Time {
	next := r.NextRotation(now)
	var told model.CredsEntry
	CredsMeta(r, &told)
	floor := now.Add(RoleMaxTTL(r))
	if announced := nextChange(&told); !announced.IsZero() && announced.Before(floor) {
		floor = announced
	}
	if next.IsZero() || !next.Before(floor) {
		return next
	}
	if r.RotationSchedule != "" {
		return r.NextRotation(floor.Add(-time.Nanosecond))
	}
	return floor.UTC()
}
