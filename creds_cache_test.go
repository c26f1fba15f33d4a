package auth0

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Readers race rotations (immediate and staged roles, the cache bounded to one entry so
// that fills and evictions race too): no read that starts after a rotation's answer may
// serve an older version.
func TestCredsCacheNoStaleReadAfterRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.ok(logical.UpdateOperation, "roles/staged", map[string]interface{}{"client_id": testApp2ID, "rotation_strategy": "staged", "import_current_secret": true})
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"creds_cache_size": 1})

	roles := []string{"app", "staged"}
	var answered [2]atomic.Int64 // the version each role's last rotation answered
	answered[0].Store(1)
	answered[1].Store(1)
	var stop atomic.Bool
	var stale, reads atomic.Int64
	var firstStale atomic.Value
	var wg sync.WaitGroup
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				idx := (r + i) % 2
				min := answered[idx].Load()
				resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/" + roles[idx], Storage: e.storage})
				if err != nil || resp.IsError() {
					continue
				}
				reads.Add(1)
				if v := int64(resp.Data["version"].(int)); v < min {
					stale.Add(1)
					firstStale.CompareAndSwap(nil, roles[idx])
				}
			}
		}(r)
	}
	for i := 0; i < 40; i++ {
		idx := i % 2
		var data map[string]interface{}
		if idx == 0 {
			data = e.ok(logical.UpdateOperation, "rotate/app", nil)
		} else {
			data = e.ok(logical.UpdateOperation, "rotate/staged", map[string]interface{}{"switch_now": true})
		}
		answered[idx].Store(int64(data["version"].(int)))
	}
	stop.Store(true)
	wg.Wait()
	if stale.Load() != 0 || reads.Load() < 100 {
		t.Fatalf("%d of %d reads served a version older than an answered rotation (first: %v)", stale.Load(), reads.Load(), firstStale.Load())
	}
	t.Logf("%d reads raced 40 rotations; none stale; cache hits %d, misses %d", reads.Load(), e.b.CredsCache.Hits.Load(), e.b.CredsCache.Misses.Load())
}

// A node that did not write (a performance standby) drops its cached entry when Vault
// invalidates the key, and then serves the new version.
func TestCredsCacheInvalidatedOnOtherNode(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	standby := startBackendWithClock(t, e.storage, logical.TestSystemView(), hclog.Trace, e.logs, e.clock)
	read := func() int {
		resp, err := standby.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: e.storage})
		if err != nil || resp.IsError() {
			t.Fatalf("standby read: %v %v", resp, err)
		}
		return resp.Data["version"].(int)
	}
	if v := read(); v != 1 {
		t.Fatalf("standby serves version %d", v)
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if v := read(); v != 1 {
		t.Fatalf("standby served version %d before any invalidation: is it caching at all?", v)
	}
	standby.invalidate(t.Context(), model.CredsKey("app"))
	if v := read(); v != 2 {
		t.Fatalf("standby serves version %d after the invalidation, want 2", v)
	}
}
