package engine

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/metrics"
)

// Host is what the engine takes from the Vault backend it runs in: its logger, once Vault
// has set it up, and its system view.
type Host interface {
	Logger() hclog.Logger
	System() logical.SystemView
	WriteSafeReplicationState() bool
}

// Engine is everything of a mount that is not a request handler: the job path, recovery
// of what a crash left in flight, the scheduler, the caches and the Management API
// connection. The path handlers call it; it knows nothing of them.
type Engine struct {
	host Host
	// version is the plugin's version, which the engine sends Auth0 as its user agent.
	version string

	// Clock is the engine's time: real in Vault, virtual in tests.
	Clock clock.Clock
	// Jitter spreads retries (retryDelay); tests make it deterministic.
	Jitter func(n int64) int64

	// roleLocks serialize everything that changes one role (its jobs, update, delete).
	// Reads of creds take no lock: they read one entry, which every change writes whole.
	roleLocks []*locksutil.LockEntry
	// OwnerMu makes checking and claiming an application's ownership one step.
	OwnerMu sync.Mutex

	// Conn caches the parsed config and the Management API client built from it, so that
	// the hot path (creds) reads no config from storage. It is dropped whenever the config
	// changes, here or, through Invalidate, on another node.
	Conn   atomic.Pointer[connection]
	connMu sync.Mutex

	// ctx outlives requests: the Management client's token source and rotations use it, so
	// a caller that disconnects cannot abort a rotation between Auth0 and storage.
	ctx    context.Context
	Cancel context.CancelFunc

	// ConfigMu serializes config writes, deletes and root rotations.
	ConfigMu sync.Mutex
	// rootAcceptWait bounds the wait for Auth0 to accept a new root secret.
	rootAcceptWait time.Duration
	// RootStepHook, when set (tests only), runs between the steps of a root rotation.
	RootStepHook func(step string)

	// Limiter paces this mount's Management API calls; it outlives client rebuilds.
	Limiter *auth0api.RateLimiter

	// recovering maps a role name to a channel closed once the rotation a crash left in
	// flight for it is reconciled; creds reads of that role wait for it.
	recovering sync.Map

	// Sched is the running scheduler, nil where this node may not write.
	Sched atomic.Pointer[Scheduler]
	// ManualDispatch (tests only) starts no dispatcher: tests run due jobs with runDueNow.
	ManualDispatch bool
	// retryBase and retryCap bound the delays between retries of failed attempts.
	retryBase, retryCap time.Duration

	// GenerateKey makes private_key_jwt key pairs (PKCS #8 and PKIX PEM).
	GenerateKey func(bits int) (privatePEM, publicPEM string, err error)
	// MountTag identifies this mount in the names of the Auth0 credentials it registers.
	MountTag string
	// Tokens caches the access tokens token/ minted, in memory only.
	Tokens *tokenCache
	// CredsCache caches decoded creds entries for the read path (creds_cache.go).
	CredsCache *credsCache
	// rotating maps a role name to a channel closed when its running job ends (tokens.go).
	rotating sync.Map

	// Metrics are the mount's Prometheus metrics (auth0/metrics); roleHealth what their
	// gauges report of the roles.
	Metrics    *metrics.Metrics
	roleHealth *roleHealth
	// drift is the drift sweep's memory (drift.go).
	drift driftState
}

func NewEngine(clk clock.Clock, host Host, version string) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Engine{
		host:      host,
		version:   version,
		Clock:     clk,
		Jitter:    model.RandomJitter,
		roleLocks: locksutil.CreateLocks(),
		ctx:       ctx,
		Cancel:    cancel,
		Limiter:   auth0api.NewRateLimiter(auth0api.DefaultRateLimit, clk),
		retryBase: DefaultRetryBase,
		retryCap:  DefaultRetryCap,

		rootAcceptWait: rootAcceptWait,
		GenerateKey:    auth0api.GenerateRSAKey,
		Tokens:         newTokenCache(),
		CredsCache:     NewCredsCache(model.DefaultCredsCacheSize),
		roleHealth:     newRoleHealth(),
	}
	b.Metrics = metrics.New(b.health)
	b.Limiter.SetObserver(b.Metrics)
	return b
}

// logger is the mount's logger.
func (b *Engine) logger() hclog.Logger { return b.host.Logger() }

func (b *Engine) RoleLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.roleLocks, name)
}
