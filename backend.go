// Package auth0 is a Vault secrets engine that owns Auth0 application client secrets:
// it rotates them through Auth0's Management API, keeps every rotation as a version and
// serves the current one to whatever Vault policy allows.
package auth0

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/vault-plugin-auth0/vault-plugin-auth0.Version=vX.Y.Z".
// Vault requires it to equal the -version the plugin is registered with.
var Version = "v0.0.0-dev"

// Factory returns a configured instance of the backend; Vault calls it once per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

type backend struct {
	*framework.Backend

	// clock is the engine's time: real in Vault, virtual in tests.
	clock clock.Clock
	// jitter spreads retries (retryDelay); tests make it deterministic.
	jitter func(n int64) int64

	// roleLocks serialize everything that changes one role (its jobs, update, delete).
	// Reads of creds take no lock: they read one entry, which every change writes whole.
	roleLocks []*locksutil.LockEntry
	// ownerMu makes checking and claiming an application's ownership one step.
	ownerMu sync.Mutex

	// conn caches the parsed config and the Management API client built from it, so that
	// the hot path (creds) reads no config from storage. It is dropped whenever the config
	// changes, here or, through Invalidate, on another node.
	conn   atomic.Pointer[connection]
	connMu sync.Mutex

	// ctx outlives requests: the Management client's token source and rotations use it, so
	// a caller that disconnects cannot abort a rotation between Auth0 and storage.
	ctx    context.Context
	cancel context.CancelFunc

	// configMu serializes config writes, deletes and root rotations.
	configMu sync.Mutex
	// rootAcceptWait bounds the wait for Auth0 to accept a new root secret.
	rootAcceptWait time.Duration
	// rootStepHook, when set (tests only), runs between the steps of a root rotation.
	rootStepHook func(step string)

	// limiter paces this mount's Management API calls; it outlives client rebuilds.
	limiter *auth0api.RateLimiter

	// recovering maps a role name to a channel closed once the rotation a crash left in
	// flight for it is reconciled; creds reads of that role wait for it.
	recovering sync.Map

	// sched is the running scheduler, nil where this node may not write.
	sched atomic.Pointer[scheduler]
	// manualDispatch (tests only) starts no dispatcher: tests run due jobs with runDueNow.
	manualDispatch bool
	// retryBase and retryCap bound the delays between retries of failed attempts.
	retryBase, retryCap time.Duration

	// generateKey makes private_key_jwt key pairs (PKCS #8 and PKIX PEM).
	generateKey func(bits int) (privatePEM, publicPEM string, err error)
	// mountTag identifies this mount in the names of the Auth0 credentials it registers.
	mountTag string
	// tokens caches the access tokens token/ minted, in memory only.
	tokens *tokenCache
	// credsCache caches decoded creds entries for the read path (creds_cache.go).
	credsCache *credsCache
	// rotating maps a role name to a channel closed when its running job ends (tokens.go).
	rotating sync.Map
}

// Setup is framework.Backend's, and also takes the mount's identity from conf.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.mountTag = mountTag(conf.BackendUUID)
	return b.Backend.Setup(ctx, conf)
}

// mountTag is the first 8 characters of the mount's UUID ("mount" when Vault gives none).
func mountTag(uuid string) string {
	uuid = strings.ReplaceAll(uuid, "-", "")
	if len(uuid) < 8 {
		return "mount"
	}
	return uuid[:8]
}

func newBackend() *backend {
	return newBackendWithClock(clock.Real{})
}

func newBackendWithClock(clk clock.Clock) *backend {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{
		clock:     clk,
		jitter:    randomJitter,
		roleLocks: locksutil.CreateLocks(),
		ctx:       ctx,
		cancel:    cancel,
		limiter:   auth0api.NewRateLimiter(auth0api.DefaultRateLimit, clk),
		retryBase: defaultRetryBase,
		retryCap:  defaultRetryCap,

		rootAcceptWait: rootAcceptWait,
		generateKey:    auth0api.GenerateRSAKey,
		tokens:         newTokenCache(),
		credsCache:     newCredsCache(defaultCredsCacheSize),
	}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{
				configStoragePath,
				credsStoragePrefix,
				secretStoragePrefix,
			},
			// A write-ahead entry belongs to the cluster whose rotation wrote it.
			LocalStorage: []string{
				framework.WALPrefix,
			},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathRoles(b),
			pathRotate(b),
			pathCreds(b),
			pathVersions(b),
			pathToken(b),
			pathStatus(b),
		),
		InitializeFunc:    b.initialize,
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
		RunningVersion:    Version,
	}
	return b
}

func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStoragePath:
		b.resetConnection()
	case strings.HasPrefix(key, roleStoragePrefix):
		b.tokens.dropRole(strings.TrimPrefix(key, roleStoragePrefix))
	case strings.HasPrefix(key, credsStoragePrefix):
		name := strings.TrimPrefix(key, credsStoragePrefix)
		b.credsCache.invalidate(name)
		b.tokens.dropRole(name)
	}
}

// clean runs when the mount is unmounted, sealed or reloaded. It cancels the backend's
// context first: rate-limit waits end, so a request not yet sent is abandoned, and one
// already sent is cut off and leaves its write-ahead entry for reconciliation. Then it
// waits a bounded time for the scheduler's workers.
func (b *backend) clean(context.Context) {
	b.cancel()
	b.stopScheduler()
	b.resetConnection()
}

func (b *backend) roleLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.roleLocks, name)
}

const backendHelp = `
The Auth0 secrets engine takes ownership of Auth0 application client secrets.

Configure the Management API connection at "config", bind a Vault role to an Auth0
application at "roles/<name>", rotate its secret with "rotate/<name>" and read the current
secret at "creds/<name>". Every rotation is kept as a version ("versions/<name>").
`
