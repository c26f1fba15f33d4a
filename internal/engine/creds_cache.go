package engine

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"hash/maphash"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/logical"
)

// The creds read cache keeps decoded creds/<name> entries in memory, so that the hot path
// (creds/, and token/ and assertion/ on a miss) costs no storage round trip from the
// plugin back into Vault. It is coherent on every node:
//
//   - writers (all under the role's lock) call invalidate after every write or delete of
//     creds/<name>, before the change is acknowledged: a rotation's answer is never
//     followed by a read of the replaced secret;
//   - Vault calls Invalidate for the key on performance standbys and replicated
//     clusters, which does the same there;
//   - a read that missed fills the cache only if no invalidation of its stripe happened
//     since it began reading storage, so a read racing a write cannot put back the old
//     entry.
//
// Hits take a shared lock only (the LRU's Peek): recency is set by fills, not reads, so
// under pressure a hot entry may be evicted and is refilled by one storage read.

const (
	MaxCredsCacheSize = 1000000
	cacheStripes      = 256
)

type credsCache struct {
	Lru  atomic.Pointer[lru.Cache[string, *model.CredsEntry]] // nil: disabled
	seed maphash.Seed
	// gens counts invalidations per stripe of names.
	gens [cacheStripes]atomic.Uint64
	// fillMu makes a fill's check of its stripe and its add one step against invalidate.
	fillMu sync.Mutex
	size   atomic.Int64
	Hits   atomic.Int64
	Misses atomic.Int64
}

func NewCredsCache(size int) *credsCache {
	c := &credsCache{seed: maphash.MakeSeed()}
	c.resize(size)
	return c
}

// resize sets the cache's bound; 0 disables it. Entries beyond the new bound are evicted.
func (c *credsCache) resize(size int) {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	if int64(size) == c.size.Load() && (size == 0) == (c.Lru.Load() == nil) {
		return
	}
	c.size.Store(int64(size))
	if size <= 0 {
		c.Lru.Store(nil)
		return
	}
	if cur := c.Lru.Load(); cur != nil {
		cur.Resize(size)
		return
	}
	l, _ := lru.New[string, *model.CredsEntry](size)
	c.Lru.Store(l)
}

func (c *credsCache) stripe(name string) *atomic.Uint64 {
	return &c.gens[maphash.String(c.seed, name)%cacheStripes]
}

// Get returns the cached entry of name; a miss returns the stripe generation to fill with.
func (c *credsCache) Get(name string) (*model.CredsEntry, uint64) {
	if l := c.Lru.Load(); l != nil {
		if e, ok := l.Peek(name); ok {
			c.Hits.Add(1)
			return e, 0
		}
	}
	c.Misses.Add(1)
	return nil, c.stripe(name).Load()
}

// Fill caches what a read found, unless an invalidation of its stripe came in between.
func (c *credsCache) Fill(name string, e *model.CredsEntry, gen uint64) {
	l := c.Lru.Load()
	if l == nil || e == nil {
		return
	}
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	if c.stripe(name).Load() == gen {
		l.Add(name, e)
	}
}

// Invalidate drops name after a write or delete of creds/<name>.
func (c *credsCache) Invalidate(name string) {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.stripe(name).Add(1)
	if l := c.Lru.Load(); l != nil {
		l.Remove(name)
	}
}

func (c *credsCache) Len() int {
	if l := c.Lru.Load(); l != nil {
		return l.Len()
	}
	return 0
}

// putCreds writes creds/<name> and invalidates the read cache's entry, whether or not the
// write succeeded (a failed Put may still have reached storage). Every write of creds goes
// through it, under the role's lock.
func (b *Engine) putCreds(ctx context.Context, s logical.Storage, name string, c *model.CredsEntry) error {
	defer b.CredsCache.Invalidate(name)
	return model.SaveCreds(ctx, s, name, c)
}

// LoadCredsCached is loadCreds through the read cache: the read path's way to creds.
func (b *Engine) LoadCredsCached(ctx context.Context, s logical.Storage, name string) (*model.CredsEntry, error) {
	e, gen := b.CredsCache.Get(name)
	if e != nil {
		return e, nil
	}
	e, err := model.LoadCreds(ctx, s, name)
	if err != nil {
		return nil, err
	}
	b.CredsCache.Fill(name, e, gen)
	return e, nil
}
