package auth0

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
)

const (
	// rootQueueKey is the scheduler's key for the root rotation; role names cannot contain '/'.
	rootQueueKey = "config/rotate-root"
	// rootSecretLength and rootSecretAlphabet match what Auth0 generates for client secrets.
	rootSecretLength   = 64
	rootSecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// rootAcceptWait is how long a new root secret may take to be accepted: Auth0 documents
	// up to 30 seconds.
	rootAcceptWait = 30 * time.Second
)

// Steps of a root rotation, for tests that stop the process between them.
const (
	rootStepPendingStored = "pending-stored"
	rootStepPatched       = "patched"
	rootStepVerified      = "verified"
)

// generateClientSecret returns a new random secret. The alphabet has 64 symbols, so the
// low six bits of each random byte pick one uniformly.
func generateClientSecret() (string, error) {
	buf := make([]byte, rootSecretLength)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	for i, c := range buf {
		buf[i] = rootSecretAlphabet[c&63]
	}
	return string(buf), nil
}

// rotateRoot replaces the Management API application's own secret, safe by construction:
// the new secret is generated here and stored as pending before Auth0 is touched, set with
// an idempotent PATCH, proven by obtaining a token with it, and only then made current. A
// crash at any point leaves a config from which resolvePendingRoot finishes the rotation.
func (b *backend) rotateRoot(ctx context.Context, s logical.Storage) (*configEntry, *logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()

	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		return nil, logical.ErrorResponse("the engine is not configured yet; write the Management API credentials first: vault write <mount>/config domain=... client_id=... client_secret=..."), nil
	}
	if cfg.PendingClientSecret != "" {
		if cfg, err = b.resolvePendingRootLocked(ctx, s, cfg); err != nil {
			return nil, nil, fmt.Errorf("an earlier root rotation is unfinished and could not be resolved: %w", err)
		}
	}

	secret, err := generateClientSecret()
	if err != nil {
		return nil, nil, err
	}
	cfg.PendingClientSecret = secret
	if err := storeConfig(b.ctx, s, cfg); err != nil {
		return nil, nil, fmt.Errorf("storing the pending root secret: %w", err)
	}
	b.rootStep(rootStepPendingStored)

	if err := b.setRootSecret(cfg); err != nil {
		if errors.Is(err, errOutcomeUnknown) {
			// Auth0 may or may not have applied it; resolving sets it again if needed.
			b.Logger().Warn("Auth0's answer to the root secret change was lost; resolving", "error", err)
			if cfg, err = b.resolvePendingRootLocked(ctx, s, cfg); err != nil {
				return nil, nil, fmt.Errorf("rotating the root credentials: Auth0's answer was lost and the outcome could not be resolved yet (Vault retries at start and on the next rotate-root): %w", err)
			}
			return cfg, nil, nil
		}
		cfg.PendingClientSecret = ""
		if serr := storeConfig(b.ctx, s, cfg); serr != nil {
			b.Logger().Warn("could not clear the pending root secret; it will be resolved at the next start", "error", serr)
		}
		resp, rerr := auth0Failure(fmt.Sprintf("setting a new secret on the Management API application %q", cfg.ClientID), err)
		return nil, resp, rerr
	}
	b.rootStep(rootStepPatched)

	if err := b.waitRootAccepted(cfg, secret); err != nil {
		return nil, nil, fmt.Errorf("Auth0 took the new root secret but does not accept it yet (%w); it is kept as pending and made current at the next start or rotate-root", err)
	}
	b.rootStep(rootStepVerified)

	if err := b.promotePendingRoot(s, cfg); err != nil {
		return nil, nil, err
	}
	b.Logger().Info("rotated the Management API application's secret", "client_id", cfg.ClientID)
	return cfg, nil, nil
}

// resolvePendingRoot finishes or rolls back a root rotation a crash interrupted; the
// scheduler runs it at start, before anything else talks to Auth0.
func (b *backend) resolvePendingRoot(ctx context.Context, s logical.Storage) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	cfg, err := loadConfig(ctx, s)
	if err != nil || cfg == nil || cfg.PendingClientSecret == "" {
		return
	}
	if _, err := b.resolvePendingRootLocked(ctx, s, cfg); err != nil {
		b.Logger().Error("could not resolve an interrupted root rotation; will retry at the next start or rotate-root", "error", err)
	}
}

// resolvePendingRootLocked decides an unfinished root rotation, and says which way in the
// log. If the pending secret works, the rotation is finished. If the current one still
// works, the pending secret is set again (the PATCH is idempotent) and the rotation
// finished; if Auth0 refuses that, it is rolled back. If neither works yet, nothing
// changes and an error is returned. The caller holds configMu.
func (b *backend) resolvePendingRootLocked(ctx context.Context, s logical.Storage, cfg *configEntry) (*configEntry, error) {
	pending := cfg.PendingClientSecret
	err := verifyCredentials(ctx, cfg.withSecret(pending))
	if err == nil {
		if err := b.promotePendingRoot(s, cfg); err != nil {
			return nil, err
		}
		b.Logger().Info("finished an interrupted root rotation: Auth0 accepts the new secret", "client_id", cfg.ClientID)
		return cfg, nil
	}
	if !credentialsRejected(err) {
		return nil, fmt.Errorf("checking the pending root secret: %w", err)
	}
	if err := verifyCredentials(ctx, cfg); err != nil {
		return nil, fmt.Errorf("Auth0 accepts neither the pending nor the current root secret (%s); if Auth0 is still propagating a change this resolves by itself, otherwise write config with a working client_secret", describeTokenError(err))
	}
	if err := b.setRootSecret(cfg); err != nil {
		if errors.Is(err, errOutcomeUnknown) {
			return nil, fmt.Errorf("setting the pending root secret again: %w", err)
		}
		cfg.PendingClientSecret = ""
		if serr := storeConfig(b.ctx, s, cfg); serr != nil {
			return nil, fmt.Errorf("rolling back the root rotation: %w", serr)
		}
		b.Logger().Warn("rolled back an interrupted root rotation: Auth0 refused the new secret and still accepts the current one", "client_id", cfg.ClientID, "error", err)
		return cfg, nil
	}
	if err := b.waitRootAccepted(cfg, pending); err != nil {
		return nil, fmt.Errorf("the pending root secret was set again but Auth0 does not accept it yet: %w", err)
	}
	if err := b.promotePendingRoot(s, cfg); err != nil {
		return nil, err
	}
	b.Logger().Info("finished an interrupted root rotation: set the new secret again and Auth0 accepts it", "client_id", cfg.ClientID)
	return cfg, nil
}

// setRootSecret PATCHes the pending secret onto the Management API application, using the
// current credentials.
func (b *backend) setRootSecret(cfg *configEntry) error {
	// A client of its own, built from exactly these credentials: the cached one may
	// predate them.
	client, err := b.newClient(b.ctx, cfg)
	if err != nil {
		return err
	}
	defer client.close()
	return client.SetClientSecret(b.ctx, cfg.ClientID, cfg.PendingClientSecret)
}

// waitRootAccepted polls until Auth0 issues a token for secret, for up to rootAcceptWait.
func (b *backend) waitRootAccepted(cfg *configEntry, secret string) error {
	deadline := time.Now().Add(b.rootAcceptWait)
	for {
		err := verifyCredentials(b.ctx, cfg.withSecret(secret))
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// promotePendingRoot makes the pending secret current, drops the old one, and switches the
// mount's client to it at once (other nodes follow through Invalidate).
func (b *backend) promotePendingRoot(s logical.Storage, cfg *configEntry) error {
	now := time.Now().UTC()
	cfg.ClientSecret = cfg.PendingClientSecret
	cfg.PendingClientSecret = ""
	cfg.LastRootRotation = now
	if cfg.RootRotationPeriod > 0 {
		cfg.NextRootRotation = now.Add(cfg.RootRotationPeriod)
	}
	if err := storeConfig(b.ctx, s, cfg); err != nil {
		return fmt.Errorf("storing the new root secret (Auth0 already accepts it; it stays pending and is made current at the next start): %w", err)
	}
	b.resetConnection()
	b.scheduleRoot(cfg)
	return nil
}

// credentialsRejected tells Auth0 refusing the credentials from not reaching Auth0.
func credentialsRejected(err error) bool {
	var tokenErr *oauth2.RetrieveError
	return errors.As(err, &tokenErr) && tokenErr.Response != nil && tokenErr.Response.StatusCode < 500
}

// rootStep is a test hook between the steps of a root rotation.
func (b *backend) rootStep(step string) {
	if b.rootStepHook != nil {
		b.rootStepHook(step)
	}
}

// scheduleRoot queues the periodic root rotation, or takes it out of the queue.
func (b *backend) scheduleRoot(cfg *configEntry) {
	sch := b.sched.Load()
	if sch == nil {
		return
	}
	if cfg == nil || cfg.RootRotationPeriod == 0 {
		sch.queue.remove(rootQueueKey)
		return
	}
	sch.queue.schedule(rootQueueKey, cfg.NextRootRotation)
}

// rotateRootScheduled runs a due periodic root rotation; failures retry with backoff.
func (b *backend) rotateRootScheduled(s logical.Storage) {
	sch := b.sched.Load()
	if sch == nil {
		return
	}
	_, resp, err := b.rotateRoot(b.ctx, s)
	if resp == nil && err == nil {
		b.rootFailures.Store(0)
		return
	}
	failures := int(b.rootFailures.Add(1))
	delay := retryDelay(failures, b.retryBase, b.retryCap)
	b.Logger().Warn("scheduled root rotation failed; will retry", "consecutive_failures", failures, "retry_in", delay, "error", failureMessage(resp, err))
	sch.queue.schedule(rootQueueKey, time.Now().Add(delay))
}
