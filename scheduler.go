package auth0

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// tickInterval is how often the scheduler looks for due roles. An idle tick is one
	// peek at the head of the queue, whatever the number of roles.
	tickInterval = time.Second
	// queueLoaders is how many roles are read at once when the queue is rebuilt.
	queueLoaders = 8
	// schedulerWorkers bounds the rotations in flight, so that a hanging Auth0 call never
	// stalls the queue; the mount's rate limiter paces them further.
	schedulerWorkers = 4
	// Retry delays after failed scheduled rotations: exponential from retryBase, capped.
	defaultRetryBase = 10 * time.Second
	defaultRetryCap  = time.Hour
)

// scheduler rotates roles when they fall due. It runs only where the mount may write (the
// active node of a primary cluster, or a local mount), starting in Initialize, which Vault
// calls again on a new active node after a leadership change, and stopping in Clean.
type scheduler struct {
	queue   *rotationQueue
	storage logical.Storage
	work    chan string
	stop    context.CancelFunc
	done    sync.WaitGroup
	loaded  chan struct{} // closed once every stored role has been queued
}

// initialize starts the scheduler when this node may write storage.
// Rotations left in flight by a crash are found before Initialize returns, so that creds
// reads of their roles wait for reconciliation instead of serving a secret Auth0 may have
// replaced; the reconciliation itself runs in the background.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.WriteSafeReplicationState() {
		b.Logger().Debug("storage is read-only here (standby or secondary); scheduled rotations run elsewhere")
		return nil
	}
	pending, err := b.pendingRotations(ctx, req.Storage)
	if err != nil {
		// Not fatal: Vault's rollback manager reconciles the entries later.
		b.Logger().Error("could not look for rotations left in flight", "error", err)
	}
	b.holdCreds(pending)
	b.startScheduler(req.Storage, pending)
	return nil
}

func (b *backend) startScheduler(s logical.Storage, pending []pendingRotation) {
	ctx, stop := context.WithCancel(b.ctx)
	sch := &scheduler{
		queue:   newRotationQueue(),
		storage: s,
		work:    make(chan string),
		stop:    stop,
		loaded:  make(chan struct{}),
	}
	b.sched.Store(sch)

	sch.done.Add(1 + schedulerWorkers)
	go func() {
		defer sch.done.Done()
		b.resolvePendingRoot(ctx, sch.storage)
		b.reconcilePending(ctx, sch.storage, pending)
		b.loadQueue(ctx, sch)
		close(sch.loaded)
		b.dispatch(ctx, sch)
	}()
	for i := 0; i < schedulerWorkers; i++ {
		go func() {
			defer sch.done.Done()
			for name := range sch.work {
				if name == rootQueueKey {
					b.rotateRootScheduled(sch.storage)
				} else {
					b.rotateScheduled(name)
				}
			}
		}()
	}
}

// stopScheduler stops dispatching, then waits for rotations in flight to finish: they are
// not cut off, since Auth0 may already have replaced the secret.
func (b *backend) stopScheduler() {
	if sch := b.sched.Swap(nil); sch != nil {
		sch.stop()
		sch.done.Wait()
	}
}

// loadQueue queues every stored role that has a schedule, at its persisted
// next_vault_rotation: a restart neither rotates early nor skips what fell due meanwhile.
// Roles are read by queueLoaders goroutines at once: in Vault each read is a round trip
// from the plugin to Vault's storage, which dominates the rebuild (BENCHMARKS.md).
func (b *backend) loadQueue(ctx context.Context, sch *scheduler) {
	start := time.Now()
	names, err := sch.storage.List(ctx, roleStoragePrefix)
	if err != nil {
		b.Logger().Error("could not list roles; scheduled rotations will not run until the mount is reloaded", "error", err)
		return
	}
	var queued atomic.Int64
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < queueLoaders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if b.queueRole(ctx, sch, name) {
					queued.Add(1)
				}
			}
		}()
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		work <- name
	}
	close(work)
	wg.Wait()
	if cfg, err := loadConfig(ctx, sch.storage); err == nil && cfg != nil && cfg.RootRotationPeriod > 0 {
		sch.queue.schedule(rootQueueKey, cfg.NextRootRotation)
	}
	b.Logger().Info("rotation queue loaded", "roles", len(names), "scheduled", queued.Load(), "duration", time.Since(start).String())
}

// queueRole queues one stored role if it has a schedule. It holds the role's lock so that
// a concurrent change to the role, which requeues it, cannot be overtaken by this older read.
func (b *backend) queueRole(ctx context.Context, sch *scheduler, name string) bool {
	lock := b.roleLock(name)
	lock.RLock()
	defer lock.RUnlock()
	role, err := loadRole(ctx, sch.storage, name)
	if err != nil {
		b.Logger().Error("could not load role for scheduling", "role", name, "error", err)
		return false
	}
	if role == nil || !role.scheduled() {
		return false
	}
	sch.queue.schedule(name, role.NextVaultRotation)
	return true
}

// dispatch hands due roles to the workers each tick. It pops a role only when a worker is
// free to take it, so a burst of due roles stays ordered in the queue and is worked off
// at the pace of the workers and the rate limiter.
func (b *backend) dispatch(ctx context.Context, sch *scheduler) {
	defer close(sch.work)
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for {
			name, ok := sch.queue.popDue(time.Now())
			if !ok {
				break
			}
			select {
			case sch.work <- name:
			case <-ctx.Done():
				sch.queue.schedule(name, time.Now())
				return
			}
		}
	}
}

// schedule (re)queues a role after a change to it; callers hold the role's lock so that
// the queue always follows the latest stored state.
func (b *backend) schedule(name string, role *roleEntry) {
	sch := b.sched.Load()
	if sch == nil {
		return
	}
	if role == nil || !role.scheduled() {
		sch.queue.remove(name)
		return
	}
	sch.queue.schedule(name, role.NextVaultRotation)
}

// rotateScheduled rotates a role that the queue says is due, after checking its stored
// state: the role may have been deleted, rescheduled or rotated by hand since it was queued.
func (b *backend) rotateScheduled(name string) {
	sch := b.sched.Load()
	if sch == nil {
		return
	}
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()

	role, err := loadRole(b.ctx, sch.storage, name)
	if err != nil {
		b.Logger().Error("could not load a due role; retrying", "role", name, "error", err)
		sch.queue.schedule(name, time.Now().Add(b.retryBase))
		return
	}
	now := time.Now()
	switch {
	case role == nil || !role.scheduled():
		sch.queue.remove(name)
		return
	case role.NextVaultRotation.After(now):
		sch.queue.schedule(name, role.NextVaultRotation)
		return
	case role.missedWindow(now):
		missed := role.NextVaultRotation
		role.NextVaultRotation = role.nextRotation(now)
		if err := saveRole(b.ctx, sch.storage, name, role); err != nil {
			b.Logger().Error("could not store the next rotation time", "role", name, "error", err)
		}
		b.Logger().Warn("rotation window missed; waiting for the next scheduled time", "role", name, "missed", missed, "next", role.NextVaultRotation)
		sch.queue.schedule(name, role.NextVaultRotation)
		return
	}

	if _, resp, err := b.rotateLocked(b.ctx, sch.storage, name, role, sourceScheduled); resp != nil || err != nil {
		failures := 1
		if role.LastFailure != nil {
			failures = role.LastFailure.ConsecutiveFailures
		}
		delay := retryDelay(failures, b.retryBase, b.retryCap)
		b.Logger().Warn("scheduled rotation failed; will retry", "role", name, "consecutive_failures", failures, "retry_in", delay)
		sch.queue.schedule(name, now.Add(delay))
		return
	}
	sch.queue.schedule(name, role.NextVaultRotation)
}

// missedWindow reports whether a schedule's rotation window has passed for the due time.
func (r *roleEntry) missedWindow(now time.Time) bool {
	return r.RotationSchedule != "" && r.RotationWindow > 0 && now.After(r.NextVaultRotation.Add(r.RotationWindow))
}

// retryDelay is the wait before retry number failures (1, 2, …): base doubled per failure,
// capped, with jitter so that roles failing together do not retry together. The result
// lies in [d/2, d], d being the capped exponential delay.
func retryDelay(failures int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
