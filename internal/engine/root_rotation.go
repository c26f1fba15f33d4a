package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

const (
	// RootQueueKey is the scheduler's key for the root rotation; role names cannot contain '/'.
	RootQueueKey = "config/rotate-root"
	// RootSecretLength and rootSecretAlphabet match what Auth0 generates for client secrets.
	RootSecretLength   = 64
	RootSecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// rootAcceptWait is how long a new root secret may take to be accepted: Auth0 documents
	// up to 30 seconds.
	rootAcceptWait = 30 * time.Second
)

// Steps of a root rotation, for tests that stop the process between them.
const (
	RootStepPendingStored = "pending-stored"
	RootStepPatched       = "patched"
	RootStepVerified      = "verified"
)

// GenerateClientSecret returns a new random secret. The alphabet has 64 symbols, so the
// low six bits of each random byte pick one uniformly.
func GenerateClientSecret() (string, error) {
	buf := make([]byte, RootSecretLength)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	for i, c := range buf {
		buf[i] = RootSecretAlphabet[c&63]
	}
	return string(buf), nil
}

// RunRootJob is the one path every rotation of the root credentials takes, manual,
// scheduled or reconciling, as runRoleJob is for roles: under configMu it resolves a root
// rotation left unfinished, rotates when asked or due, records a failure (time, message,
// count) on the config with the next attempt after backoff, and requeues the root job.
func (b *Engine) RunRootJob(ctx context.Context, s logical.Storage, trigger string) (*model.ConfigEntry, *logical.Response, error) {
	return b.RunRootJobWith(ctx, s, trigger, RotateOptions{})
}

// RunRootJobWith is runRootJob with a manual rotate-root's options.
func (b *Engine) RunRootJobWith(ctx context.Context, s logical.Storage, trigger string, opts RotateOptions) (_ *model.ConfigEntry, resp *logical.Response, err error) {
	b.ConfigMu.Lock()
	defer b.ConfigMu.Unlock()

	cfg, err := model.LoadConfig(ctx, s)
	if err != nil {
		if trigger != TriggerManual {
			b.retryUnreadable(RootQueueKey, err)
		}
		return nil, nil, err
	}
	if cfg == nil {
		b.ScheduleRoot(nil)
		return nil, logical.ErrorResponse(errNotConfigured), nil
	}
	defer func() { b.ScheduleRoot(cfg) }()
	last, start := cfg.LastRootRotation, time.Now()
	defer func() {
		kind := "mount/" + model.CredentialClientSecret
		if cfg.UsesKey() {
			kind = "mount/" + model.CredentialPrivateKeyJWT
		}
		b.Metrics.Job(kind, trigger, "", jobOutcome(!cfg.LastRootRotation.Equal(last), resp, err), time.Since(start))
	}()
	now := b.Clock.Now()
	if opts.EndOverlap && !cfg.UsesKey() {
		return cfg, logical.ErrorResponse("end_overlap applies only to a mount with credential_type=private_key_jwt"), nil
	}
	if cfg.UsesKey() {
		due := rootDue(cfg, now)
		idle := due.IsZero() || due.After(now)
		if trigger == TriggerReconcile && cfg.RootKey.PendingKeyIfAny() == nil || trigger == triggerScheduled && idle {
			return cfg, nil, nil
		}
		resp, err := b.RunRootKeyLocked(ctx, s, cfg, trigger, opts)
		return cfg, resp, err
	}
	pending := cfg.PendingClientSecret != ""
	notDue := func() bool {
		due := rootDue(cfg, now)
		return due.IsZero() || due.After(now)
	}
	switch {
	case trigger == TriggerReconcile && !pending:
		return cfg, nil, nil
	case trigger == triggerScheduled && !pending && notDue():
		return cfg, nil, nil
	}

	if pending {
		if err := b.resolvePendingRootLocked(ctx, s, cfg); err != nil {
			resp, rerr := rootFailure("an earlier root rotation was unfinished", err)
			return b.failRoot(ctx, s, cfg, resp, rerr)
		}
		if trigger == TriggerReconcile || trigger == triggerScheduled && notDue() {
			return cfg, nil, nil
		}
	}
	if resp, err := b.rotateRootLocked(ctx, s, cfg); resp != nil || err != nil {
		return b.failRoot(ctx, s, cfg, resp, err)
	}
	return cfg, nil, nil
}

// failRoot records a failed root rotation on the config, best effort.
func (b *Engine) failRoot(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry, resp *logical.Response, err error) (*model.ConfigEntry, *logical.Response, error) {
	msg := failureMessage(resp, err)
	cfg.RootFailures.Fail(msg, b.Clock.Now(), b.backoff)
	if serr := model.StoreConfig(ctx, s, cfg); serr != nil {
		b.logger().Warn("could not record the root rotation failure", "error", serr)
	}
	b.logger().Warn("root rotation failed", "consecutive_failures", cfg.RootFailures.LastFailure.ConsecutiveFailures,
		"next_attempt", cfg.RootFailures.NextAttempt.Format(time.RFC3339), "error", msg)
	return cfg, resp, err
}

// rotateRootLocked replaces the Management API application's own secret, safe by
// construction: the new secret is generated here and stored as pending before Auth0 is
// touched, set with an idempotent PATCH, proven by obtaining a token with it, and only then
// made current. A crash at any point leaves a config from which resolvePendingRootLocked
// finishes or rolls back the rotation. The caller holds configMu.
func (b *Engine) rotateRootLocked(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry) (*logical.Response, error) {
	secret, err := GenerateClientSecret()
	if err != nil {
		return nil, err
	}
	cfg.PendingClientSecret = secret
	if err := model.StoreConfig(b.ctx, s, cfg); err != nil {
		cfg.PendingClientSecret = ""
		return nil, fmt.Errorf("storing the pending root secret: %w", err)
	}
	b.rootStep(RootStepPendingStored)

	if err := b.setRootSecret(cfg); err != nil {
		if errors.Is(err, auth0api.ErrOutcomeUnknown) {
			// Auth0 may or may not have applied it; resolving sets it again if needed.
			b.logger().Warn("Auth0's answer to the root secret change was lost; resolving", "error", err)
			if err := b.resolvePendingRootLocked(ctx, s, cfg); err != nil {
				return rootFailure("rotating the root credentials: Auth0's answer was lost", err)
			}
			return nil, nil
		}
		cfg.PendingClientSecret = ""
		if serr := model.StoreConfig(b.ctx, s, cfg); serr != nil {
			b.logger().Warn("could not clear the pending root secret; it will be resolved at the next start", "error", serr)
		}
		return Auth0Failure(fmt.Sprintf("setting a new secret on the Management API application %q (nothing changed; the current secret stays in use)", cfg.ClientID), err)
	}
	b.rootStep(RootStepPatched)

	if err := b.waitRootAccepted(cfg, secret); err != nil {
		return nil, fmt.Errorf("Auth0 took the new root secret but does not accept it yet (%w); it is kept as pending and made current once Auth0 accepts it", err)
	}
	b.rootStep(RootStepVerified)

	if err := b.promotePendingRoot(s, cfg); err != nil {
		return nil, err
	}
	b.logger().Info("rotated the Management API application's secret", "client_id", cfg.ClientID)
	return nil, nil
}

// errRootRolledBack marks a root rotation that ended with the pending secret dropped
// because Auth0 refused it: the rotation failed, and the current secret stays in use.
var errRootRolledBack = errors.New("the root rotation was rolled back: Auth0 refused the new secret, and the current one stays in use")

// rootFailure turns a failed root resolution into what the caller sees: a rollback is an
// error response that says so, anything else an error with context.
func rootFailure(what string, err error) (*logical.Response, error) {
	if errors.Is(err, errRootRolledBack) {
		return logical.ErrorResponse("%s: %s", what, err), nil
	}
	return nil, fmt.Errorf("%s and could not be resolved yet (Vault retries with backoff): %w", what, err)
}

// resolvePendingRootLocked decides an unfinished root rotation, and says which way in the
// log. If the pending secret works, the rotation is finished. If the current one still
// works, the pending secret is set again (the PATCH is idempotent) and the rotation
// finished; if Auth0 refuses that, it is rolled back and errRootRolledBack returned. If
// neither works yet, nothing changes and an error is returned. The caller holds configMu.
func (b *Engine) resolvePendingRootLocked(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry) error {
	pending := cfg.PendingClientSecret
	err := auth0api.VerifyCredentials(ctx, b.SettingsOf(cfg.WithSecret(pending)))
	if err == nil {
		if err := b.promotePendingRoot(s, cfg); err != nil {
			return err
		}
		b.logger().Info("finished an interrupted root rotation: Auth0 accepts the new secret", "client_id", cfg.ClientID)
		return nil
	}
	if !auth0api.CredentialsRejected(err) {
		return fmt.Errorf("checking the pending root secret: %w", err)
	}
	if err := auth0api.VerifyCredentials(ctx, b.SettingsOf(cfg)); err != nil {
		return fmt.Errorf("Auth0 accepts neither the pending nor the current root secret (%s); if Auth0 is still propagating a change this resolves by itself, otherwise write config with a working client_secret", DescribeTokenError(err))
	}
	if err := b.setRootSecret(cfg); err != nil {
		if errors.Is(err, auth0api.ErrOutcomeUnknown) {
			return fmt.Errorf("setting the pending root secret again: %w", err)
		}
		cfg.PendingClientSecret = ""
		if serr := model.StoreConfig(b.ctx, s, cfg); serr != nil {
			cfg.PendingClientSecret = pending
			return fmt.Errorf("rolling back the root rotation: %w", serr)
		}
		b.logger().Warn("rolled back a root rotation: Auth0 refused the new secret and still accepts the current one", "client_id", cfg.ClientID, "error", err)
		return fmt.Errorf("%w (%v)", errRootRolledBack, err)
	}
	if err := b.waitRootAccepted(cfg, pending); err != nil {
		return fmt.Errorf("the pending root secret was set again but Auth0 does not accept it yet: %w", err)
	}
	if err := b.promotePendingRoot(s, cfg); err != nil {
		return err
	}
	b.logger().Info("finished an interrupted root rotation: set the new secret again and Auth0 accepts it", "client_id", cfg.ClientID)
	return nil
}

// setRootSecret PATCHes the pending secret onto the Management API application, using the
// current credentials.
func (b *Engine) setRootSecret(cfg *model.ConfigEntry) error {
	// A client of its own, built from exactly these credentials: the cached one may
	// predate them.
	client, err := b.newClient(b.ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	return client.SetClientSecret(b.ctx, cfg.ClientID, cfg.PendingClientSecret)
}

// waitRootAccepted polls until Auth0 issues a token for secret, for up to rootAcceptWait.
func (b *Engine) waitRootAccepted(cfg *model.ConfigEntry, secret string) error {
	deadline := b.Clock.Now().Add(b.rootAcceptWait)
	for {
		err := auth0api.VerifyCredentials(b.ctx, b.SettingsOf(cfg.WithSecret(secret)))
		if err == nil || !b.Clock.Now().Before(deadline) {
			return err
		}
		if serr := clock.Sleep(b.ctx, b.Clock, time.Second); serr != nil {
			return err
		}
	}
}

// promotePendingRoot makes the pending secret current, drops the old one, and switches the
// mount's client to it at once (other nodes follow through Invalidate).
func (b *Engine) promotePendingRoot(s logical.Storage, cfg *model.ConfigEntry) error {
	now := b.Clock.Now().UTC()
	next := *cfg
	next.ClientSecret = cfg.PendingClientSecret
	next.PendingClientSecret = ""
	next.LastRootRotation = now
	next.RootFailures.Succeed()
	if next.RootRotationPeriod > 0 {
		next.NextRootRotation = now.Add(next.RootRotationPeriod)
	}
	if err := model.StoreConfig(b.ctx, s, &next); err != nil {
		return fmt.Errorf("storing the new root secret (Auth0 already accepts it; it stays pending and is made current once storage works): %w", err)
	}
	*cfg = next
	b.ResetConnection()
	return nil
}

// rootStep is a test hook between the steps of a root rotation.
func (b *Engine) rootStep(step string) {
	if b.RootStepHook != nil {
		b.RootStepHook(step)
	}
}

// ScheduleRoot queues the root job at the time the config says, or takes it out.
func (b *Engine) ScheduleRoot(cfg *model.ConfigEntry) {
	sch := b.Sched.Load()
	if sch == nil {
		return
	}
	var due time.Time
	if cfg != nil {
		due = rootDue(cfg, b.Clock.Now())
		sch.clearUnreadable(RootQueueKey)
	}
	sch.enqueue(RootQueueKey, due)
}

// rootKeyDue is when the root job of a mount on private_key_jwt is due: at once while it
// has no key yet, else when its key state says.
func rootKeyDue(c *model.ConfigEntry, now time.Time) time.Time {
	if c.RootKey == nil || c.RootKey.Current() == nil && c.RootKey.PendingKey == nil {
		return model.Later(now, c.RootFailures.NextAttempt)
	}
	return DueTime(c.RootKeyState(), now)
}

// rootDue is when the scheduler should next run the root job, zero for never: at once
// (after any backoff) while a root rotation is unfinished, else at the next periodic
// rotation, or after a failure the next attempt if that is later.
func rootDue(c *model.ConfigEntry, now time.Time) time.Time {
	switch {
	case c == nil:
		return time.Time{}
	case c.UsesKey():
		return rootKeyDue(c, now)
	case c.PendingClientSecret != "":
		return model.Later(now, c.RootFailures.NextAttempt)
	case c.RootRotationPeriod == 0 || !model.PlausibleDue(c.NextRootRotation, now):
		return time.Time{}
	}
	return model.Later(c.NextRootRotation, c.RootFailures.NextAttempt)
}
