package auth0

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// The API simulation's environment: nodes (a backend each, on one shared storage, each on
// its own clock), the storage they see, and the emulator's fault hook.

// apiNode is one Vault node running the mount: the active one serves every request; a
// failover ends it and starts another on the same storage.
type apiNode struct {
	id    int
	b     *backend
	clock *skewClock
	store *apiStorage
	// reqMu is held shared by every request and job on the node, and exclusively by the
	// failover that ends it, which so waits for what is in flight.
	reqMu sync.RWMutex
	// dead: the node crashed or was failed over; its storage refuses everything. died is
	// closed then.
	dead     atomic.Bool
	died     chan struct{}
	deadOnce sync.Once
	// nextLag, if set, is how far the clock of the node that takes over lags.
	nextLag atomic.Int64
}

// kill makes the node's storage refuse everything from now on, as after a crash.
func (n *apiNode) kill() {
	n.dead.Store(true)
	n.deadOnce.Do(func() { close(n.died) })
}

// skewClock is a node's clock: the shared virtual time plus the node's offset, which a
// failover or a clock step changes. Timers run on the shared time.
type skewClock struct {
	base   *fakeClock
	offset atomic.Int64
}

func (c *skewClock) Now() time.Time { return c.base.Now().Add(time.Duration(c.offset.Load())) }

func (c *skewClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	return c.base.NewTimer(d)
}

// apiStorage is what a node's backend stores through: the engine simulation's storage
// (simStorage: the armed storage failures) on the shared storage, refusing everything
// once its node is dead, with a yield at every operation, where Vault's storage is a round
// trip to another process, so that concurrent requests interleave there and the state a
// request read may change before it acts on it.
type apiStorage struct {
	sim   *apiSim
	node  *apiNode
	inner *simStorage
}

var _ logical.Storage = (*apiStorage)(nil)

// gate decides an operation before it reaches simStorage.
func (s *apiStorage) gate(op, key string) error {
	runtime.Gosched()
	if s.node.dead.Load() {
		return errSimCrash
	}
	if op == "put" && s.sim.cuts(key) {
		// The armed cut: the node crashes at this write of the role, which never lands.
		s.node.kill()
		s.sim.faultsServed.Add(1)
		s.sim.count("fault served: commit cut")
		return errSimCrash
	}
	return nil
}

// outcome counts the failures simStorage injected, and yields again: the answer, too,
// travels back while other requests run.
func (s *apiStorage) outcome(err error) error {
	runtime.Gosched()
	if errors.Is(err, errStorageDown) || errors.Is(err, errSimCrash) {
		s.sim.faultsServed.Add(1)
	}
	return err
}

func (s *apiStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.gate("list", prefix); err != nil {
		return nil, err
	}
	keys, err := s.inner.List(ctx, prefix)
	return keys, s.outcome(err)
}

// apiHoldKey, in a request's context, holds a channel: the request's reads of creds are
// answered (with what storage held when they were made) only once it is closed, or the
// node dies.
type apiHoldKey struct{}

func (s *apiStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := s.gate("get", key); err != nil {
		return nil, err
	}
	e, err := s.inner.Get(ctx, key)
	if hold, ok := ctx.Value(apiHoldKey{}).(chan struct{}); ok && strings.HasPrefix(key, model.CredsStoragePrefix) {
		select {
		case <-hold:
		case <-s.node.died:
		}
	}
	return e, s.outcome(err)
}

func (s *apiStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := s.gate("put", e.Key); err != nil {
		return err
	}
	s.sim.notePut(e.Key)
	return s.outcome(s.inner.Put(ctx, e))
}

func (s *apiStorage) Delete(ctx context.Context, key string) error {
	if err := s.gate("delete", key); err != nil {
		return err
	}
	return s.outcome(s.inner.Delete(ctx, key))
}

// crashed reports whether the node can no longer reach storage.
func (n *apiNode) crashed() bool { return n.dead.Load() || n.store.inner.isCrashed() }

// startNode starts a backend on the shared storage as Vault does on the node that becomes
// active, its clock offset from the shared time, and waits until its scheduler loaded; a
// node that crashes before (an armed cut may strike its start) is ended, and another
// started.
func (a *apiSim) startNode(offset time.Duration) (*apiNode, error) {
	for {
		n, err := a.startOneNode(offset)
		if err != nil || !n.dead.Load() {
			return n, err
		}
		n.b.Cleanup(context.Background())
		a.count("crash while starting")
	}
}

func (a *apiSim) startOneNode(offset time.Duration) (*apiNode, error) {
	a.nodeSeq++
	n := &apiNode{id: a.nodeSeq, clock: &skewClock{base: a.clock}, died: make(chan struct{})}
	n.clock.offset.Store(int64(offset))
	n.store = &apiStorage{sim: a, node: n, inner: &simStorage{inner: a.base, plan: a.plan}}
	conf := logical.TestBackendConfig()
	conf.StorageView = n.store
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("node%d", n.id), Level: hclog.Trace, Output: a.logs})
	b := newBackendWithClock(n.clock)
	b.ManualDispatch = true
	b.Jitter = func(n int64) int64 { return n - 1 }
	b.GenerateKey = a.generateKey
	if err := b.Setup(context.Background(), conf); err != nil {
		return nil, err
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: n.store}); err != nil {
		return nil, err
	}
	n.b = b
	if sch := b.Sched.Load(); sch != nil {
		select {
		case <-sch.Loaded:
		case <-n.died:
		}
	}
	return n, nil
}

// failover ends node old, if it is still the active one, and makes a new node active
// whose clock lags the shared time by lag: as when the active node crashes and a standby
// with another clock takes over. Requests in flight on old fail (its storage is gone) and
// are waited for.
func (a *apiSim) failover(old *apiNode, lag time.Duration, why string) {
	a.failoverMu.Lock()
	defer a.failoverMu.Unlock()
	if a.node.Load() != old {
		return
	}
	old.kill()
	old.reqMu.Lock()
	defer old.reqMu.Unlock()
	old.b.Cleanup(context.Background())
	n, err := a.startNode(-lag)
	if err != nil {
		a.problem("failover: starting node: %v", err)
		return
	}
	a.node.Store(n)
	a.count("failover")
	a.note(-1, fmt.Sprintf("failover (%s): node %d -> node %d, its clock %s behind", why, old.id, n.id, lag))
}

// generateKey serves private_key_jwt keys from a pool made ahead (key generation dominates
// otherwise), and registers each for the log check.
func (a *apiSim) generateKey(bits int) (string, string, error) {
	var private, public string
	var err error
	if bits == model.DefaultKeyBits {
		select {
		case k := <-a.keyPool.keys:
			private, public = k[0], k[1]
		case <-a.keyPool.done:
			private, public, err = auth0api.GenerateRSAKey(bits)
		}
	} else {
		private, public, err = auth0api.GenerateRSAKey(bits)
	}
	if err == nil {
		a.logs.addKey(private)
	}
	return private, public, err
}

// Faults at Auth0.

// apiFault is a fault armed for the next request of its kind and phase.
type apiFault struct {
	kind  string // "rotate", "patch", "read", "token"
	phase emulator.Phase
	fault emulator.Fault
	desc  string
	lag   time.Duration // of the node that takes over, for a fault that crashes the node
}

// hook is the emulator's fault hook: it learns every secret Auth0 takes (for the log
// check) and serves the armed faults, each to the next request it matches. The
// simulation's own logins (simProbeHeader) pass untouched.
func (a *apiSim) hook(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if r.Header.Get(simProbeHeader) != "" {
		return nil
	}
	kind := ""
	switch {
	case r.URL.Path == "/oauth/token":
		if clientID == testMgmtID {
			return nil
		}
		kind = "token"
	case !strings.HasPrefix(r.URL.Path, "/api/v2/clients/") || clientID == a.keyClient:
		return nil // the key role's requests: the engine simulation covers their faults
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/rotate-secret"):
		kind = "rotate"
	case r.Method == http.MethodPatch:
		kind = "patch"
	case r.Method == http.MethodGet:
		kind = "read"
	default:
		return nil
	}
	if p == emulator.AfterApply && (kind == "rotate" || kind == "patch") {
		if secret, ok := a.emu.ClientSecret(clientID); ok {
			a.logs.addSecret(secret)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.planned {
		if f.kind == kind && f.phase == p {
			a.planned = append(a.planned[:i:i], a.planned[i+1:]...)
			a.faultsServed.Add(1)
			a.counts["fault served: "+f.desc]++
			fault := f.fault
			return &fault
		}
	}
	return nil
}

// armFault arms one Auth0 fault chosen by rng; at most 4 wait.
func (a *apiSim) armFault(f apiFault) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.planned) >= 4 {
		return "auth0 fault: none armed, 4 pending"
	}
	a.planned = append(a.planned, f)
	if f.lag > 0 {
		return fmt.Sprintf("auth0 fault: next %s: %s", f.desc, f.lag)
	}
	return "auth0 fault: next " + f.desc
}

// The commit cut: a crash of the node at the write of a role right after a write of its
// creds, where a commit (or a role change) has written what creds serve and not yet the
// role, its commit point.

// armCut arms the cut for role name.
func (a *apiSim) armCut(name string) {
	a.cutMu.Lock()
	defer a.cutMu.Unlock()
	a.cutRole, a.cutSawCreds = name, false
}

func (a *apiSim) notePut(key string) {
	a.cutMu.Lock()
	defer a.cutMu.Unlock()
	if a.cutRole != "" && key == model.CredsKey(a.cutRole) {
		a.cutSawCreds = true
	}
}

// cuts reports whether the write of key is where the armed cut crashes the node; it
// disarms it then.
func (a *apiSim) cuts(key string) bool {
	a.cutMu.Lock()
	defer a.cutMu.Unlock()
	if a.cutRole == "" || !a.cutSawCreds || key != model.RoleKey(a.cutRole) {
		return false
	}
	a.cutRole = ""
	return true
}

// The log.

// apiLog is the engine's log, shared by every node: it remembers the first secret or
// piece of private key found in it, and every line that reports a panic.
type apiLog struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	secrets  map[string]bool
	keyFrags []string
	leaked   string
	panics   []string
}

func (l *apiLog) addSecret(secret string) {
	if secret == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets[secret] = true
}

func (l *apiLog) addKey(privatePEM string) {
	if f := keyFragment(privatePEM); f != "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.keyFrags = append(l.keyFrags, f)
	}
}

func (l *apiLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scanLocked(p)
	return l.buf.Write(p)
}

func (l *apiLog) scanLocked(p []byte) {
	if l.leaked == "" {
		if s := findSecret(p, l.secrets); s != "" {
			l.leaked = "a secret Auth0 or Vault issued: " + s[:8] + "..."
		} else if k := findKeyMaterial(p, l.keyFrags); k != "" {
			l.leaked = k
		}
	}
	if bytes.Contains(bytes.ToLower(p), []byte("panic")) && len(l.panics) < 5 {
		line := string(p)
		if i := strings.Index(line, "stack="); i > 0 {
			line = line[:i] // the stack follows in the failure report's log excerpt
		}
		l.panics = append(l.panics, strings.TrimSpace(line))
	}
}

// leak is the first secret or key material found in the log (rescanning it whole, for
// secrets learnt after a line that held them was written), or in text.
func (l *apiLog) leak(text ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range text {
		if s := findSecret([]byte(t), l.secrets); s != "" {
			return "a secret Auth0 or Vault issued, in " + redactText(t, s)
		}
		if k := findKeyMaterial([]byte(t), l.keyFrags); k != "" {
			return k + " in a response"
		}
	}
	if l.leaked == "" {
		if s := findSecret(l.buf.Bytes(), l.secrets); s != "" {
			l.leaked = "a secret Auth0 or Vault issued, in the log: " + s[:8] + "..."
		}
	}
	return l.leaked
}

func (l *apiLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *apiLog) panicLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.panics...)
}

// redactText is text with secret cut to its first 8 characters.
func redactText(text, secret string) string {
	return strings.ReplaceAll(text, secret, secret[:8]+"...")
}
