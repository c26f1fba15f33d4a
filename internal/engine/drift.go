package engine

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// Drift detection: someone rotates a secret in the Auth0 Dashboard, or detaches a key,
// and Vault goes on serving a credential Auth0 refuses. Every drift_check_period each
// role's credential is compared with what Auth0 holds (the secret by hash, the attached
// keys and certificates by id), at a moment of the period given by the role's name, so
// that the checks spread over the period; each check is one Management API call, paced by
// the mount's rate limit like every other. A difference is recorded on the role
// (drift_detected), logged at Error, counted in auth0/status and the metrics, and with
// drift_action=rotate taken back through the normal job path.

// DriftQueueKey is the scheduler's key of the drift sweep; role names cannot contain '@'.
// The sweep is queued at the next role's check, and not at all while checks are off.
const DriftQueueKey = "@drift"

// driftState is the sweep's memory: up to when the checks ran, and whether Auth0 refused
// to show secrets (read:client_keys missing), said once until the config changes.
type driftState struct {
	mu      sync.Mutex
	sweptTo time.Time
	noScope atomic.Bool
}

// driftSlot is role name's moment in each period: its checks are at the instants
// congruent to it modulo the period, so that the roles' checks spread over it.
func driftSlot(name string, p int64) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64() % uint64(p))
}

// DriftDue reports whether a check of role name fell due in (from, to].
func DriftDue(name string, period time.Duration, from, to time.Time) bool {
	p := int64(period)
	slot := driftSlot(name, p)
	last := to.UnixNano() - ((to.UnixNano()-slot)%p+p)%p // the latest check instant at or before to
	return last > from.UnixNano()
}

// nextDriftCheck is the first check of role name after t.
func nextDriftCheck(name string, period time.Duration, t time.Time) time.Time {
	p := int64(period)
	slot := driftSlot(name, p)
	last := t.UnixNano() - ((t.UnixNano()-slot)%p+p)%p
	return time.Unix(0, last+p)
}

// ScheduleDriftSweep (re)starts the sweeps for cfg's drift_check_period, from now: called
// when the scheduler starts and when the config changes.
func (b *Engine) ScheduleDriftSweep(cfg *model.ConfigEntry) {
	sch := b.Sched.Load()
	if sch == nil {
		return
	}
	b.drift.mu.Lock()
	b.drift.sweptTo = b.Clock.Now()
	b.drift.mu.Unlock()
	b.queueDriftSweep(sch, driftPeriod(cfg))
}

// driftPeriod is cfg's drift_check_period; 0 without a config.
func driftPeriod(cfg *model.ConfigEntry) time.Duration {
	if cfg == nil {
		return 0
	}
	return cfg.DriftCheckPeriodOrDefault()
}

// queueDriftSweep queues the sweep at the next role's check, or takes it out of the queue
// while checks are off. A role added since checks late, at the next sweep after its
// moment.
func (b *Engine) queueDriftSweep(sch *Scheduler, period time.Duration) {
	if period <= 0 {
		sch.Queue.Remove(DriftQueueKey)
		return
	}
	now := b.Clock.Now()
	next := now.Add(period)
	for _, name := range b.roleHealth.names() {
		if t := nextDriftCheck(name, period, now); t.Before(next) {
			next = t
		}
	}
	sch.enqueue(DriftQueueKey, next)
}

// runDriftSweep checks the roles whose check fell due since the last sweep. A node checks
// only after it started sweeping: a check missed while no node swept waits for the next
// period.
func (b *Engine) runDriftSweep(ctx context.Context, sch *Scheduler) {
	now := b.Clock.Now()
	b.drift.mu.Lock()
	from := b.drift.sweptTo
	b.drift.sweptTo = now
	b.drift.mu.Unlock()

	cfg, err := model.LoadConfig(ctx, sch.Storage)
	if err != nil {
		b.logger().Warn("drift sweep: reading config failed; retried in a minute", "error", err)
		sch.enqueue(DriftQueueKey, now.Add(time.Minute))
		return
	}
	period := driftPeriod(cfg)
	defer b.queueDriftSweep(sch, period)
	if period <= 0 {
		return
	}
	for _, name := range b.roleHealth.names() {
		if ctx.Err() != nil {
			return
		}
		if DriftDue(name, period, from, now) {
			b.CheckDrift(ctx, sch.Storage, name)
		}
	}
}

// CheckDrift compares role name's current credential with what Auth0 holds, records what
// it finds, and with drift_action=rotate rotates a drifted role. A role with something in
// flight (a failure being retried, a staged switch, a pending key, a rotation whose
// outcome is not stored yet) is left to its job.
func (b *Engine) CheckDrift(ctx context.Context, s logical.Storage, name string) {
	lock := b.RoleLock(name)
	lock.Lock()
	role, found, err := b.checkDriftLocked(ctx, s, name)
	lock.Unlock()
	if err != nil {
		b.logger().Warn("drift check failed; the next period checks again", "role", name, "error", err)
		return
	}
	if found && role.DriftAction == model.DriftActionRotate {
		b.logger().Warn("rotating to take the credential back from the drift found (drift_action=rotate)", "role", name, "client_id", role.ClientID)
		// A staged secret switches at once: the one served is refused already, so waiting
		// stage_period would only prolong the outage.
		opts := RotateOptions{SwitchNow: slices.Contains(KindFor(role.KindKey()).options(), "switch_now")}
		if _, _, resp, err := b.RunRoleJobWith(ctx, s, name, TriggerManual, opts); err != nil || resp != nil && resp.IsError() {
			b.logger().Error("the rotation that takes back a drifted credential failed; it is retried like any failed rotation", "role", name, "error", failureMessage(resp, err))
		}
	}
}

// checkDriftLocked is CheckDrift's check, under the role's lock: whether it found drift.
func (b *Engine) checkDriftLocked(ctx context.Context, s logical.Storage, name string) (*model.RoleEntry, bool, error) {
	role, err := model.LoadRole(ctx, s, name)
	if err != nil || role == nil || role.Legacy() || role.CurrentVersion() == 0 || role.Blocked != "" ||
		role.LastFailure != nil || role.PendingKey != nil || role.Staged != nil && role.Staged.Switching {
		return role, false, err
	}
	if inFlight, err := b.rotationInFlight(ctx, s, name, role); err != nil || inFlight {
		return role, false, err
	}
	creds, err := model.LoadCreds(ctx, s, name)
	if err != nil || creds == nil || creds.Current == nil {
		return role, false, err
	}
	conn, err := b.Connection(ctx, s)
	if err != nil || conn == nil {
		return role, false, err
	}
	what, err := KindFor(role.KindKey()).driftOf(ctx, b, conn, role, creds)
	if err != nil {
		return role, false, err
	}
	now := b.Clock.Now().UTC()
	switch {
	case what != "" && (role.DriftDetected == nil || role.DriftDetected.What != what):
		next := role.Clone()
		next.DriftDetected = &model.Drift{Time: now, What: what}
		if err := b.StoreRoleState(ctx, s, name, next); err != nil {
			return role, false, err
		}
		role = next
		b.logger().Error("credential drift: Auth0 no longer holds what Vault serves", "role", name, "client_id", role.ClientID, "drift", what, "drift_action", driftActionName(role.DriftAction))
		b.roleHealth.note(name, role)
	case what == "" && role.DriftDetected != nil:
		next := role.Clone()
		next.DriftDetected = nil
		if err := b.StoreRoleState(ctx, s, name, next); err != nil {
			return role, false, err
		}
		role = next
		b.logger().Info("drift resolved: Auth0 holds what Vault serves again", "role", name, "client_id", role.ClientID)
		b.roleHealth.note(name, role)
	}
	return role, what != "", nil
}

// rotationInFlight reports whether role name has a rotation whose outcome is not stored
// yet: a write-ahead entry from its current version. Auth0 may hold the rotation's secret
// already, while creds serve the previous one until the entry is resolved (by the role's
// next job or the rollback manager); that is no drift. (The failure that would keep the
// check away is not recorded when its storage failed too.) An entry from an earlier
// version is a resolved one whose delete was lost.
func (b *Engine) rotationInFlight(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) (bool, error) {
	pending, err := b.PendingRotations(ctx, s)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(pending, func(p PendingRotation) bool {
		return p.WAL.Role == name && p.WAL.BaseVersion >= role.CurrentVersion()
	}), nil
}

// driftActionName is drift_action as a role read shows it.
func driftActionName(a string) string {
	if a == "" {
		return model.DriftActionReport
	}
	return a
}

// secretDrift is the drift check of the client secret kinds: the secret Auth0 holds
// against the one creds serve, compared by hash. Without read:client_keys Auth0 shows no
// secret: that is said once, and the secret roles go unchecked until the config changes
// (rather than spending M2M tokens on logins to find out).
func secretDrift(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, creds *model.CredsEntry) (string, error) {
	if b.drift.noScope.Load() {
		return "", nil
	}
	info, err := conn.Client.ReadClient(ctx, role.ClientID, true)
	if errors.Is(err, auth0api.ErrNoSecretScope) {
		if !b.drift.noScope.Swap(true) {
			b.logger().Warn("drift checks of client secrets need read:client_keys, which the Management API application lacks; they are skipped until config changes (keys and certificates are still checked)")
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	held := sha256.Sum256([]byte(info.Secret))
	if same(held, creds.Current.Secret) {
		return "", nil
	}
	if creds.Next != nil && same(held, creds.Next.Secret) {
		return fmt.Sprintf("Auth0 holds the staged next secret (version %d), which Vault has not switched to", creds.Next.Version), nil
	}
	return fmt.Sprintf("Auth0 holds another secret than version %d, the one creds serve (rotated outside Vault?)", creds.Current.Version), nil
}

// same compares a hash with a secret's, in constant time.
func same(held [sha256.Size]byte, secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(held[:], h[:]) == 1
}

// attachedDrift is the drift check of the kinds that attach credentials: the
// application's authentication method and its attached credentials against the current
// one and those of the overlap.
func attachedDrift(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, a attachment) (string, error) {
	api, err := keyAPIOf(conn)
	if err != nil {
		return "", err
	}
	methods, err := api.AuthMethods(ctx, role.ClientID, a.method())
	if err != nil {
		return "", err
	}
	cur := role.Current().KeyID
	if methods.Switching() {
		return fmt.Sprintf("the application no longer authenticates with %s (it uses %s): the %s creds serve is refused", a.method(), methods.Current(), a.noun()), nil
	}
	var problems []string
	if !slices.Contains(methods.Attached, cur) {
		problems = append(problems, fmt.Sprintf("the current %s (credential %s, version %d) is no longer attached", a.noun(), cur, role.CurrentVersion()))
	}
	known := []string{cur}
	if ov := role.Overlap; ov != nil {
		known = append(known, ov.CredentialIDs...)
	}
	var foreign []string
	for _, id := range methods.Attached {
		if !slices.Contains(known, id) {
			foreign = append(foreign, id)
		}
	}
	if len(foreign) > 0 {
		problems = append(problems, fmt.Sprintf("credentials Vault did not register are attached: %s", strings.Join(foreign, ", ")))
	}
	return strings.Join(problems, "; "), nil
}
