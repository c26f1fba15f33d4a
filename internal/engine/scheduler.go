package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

const (
	// maxIdleWait bounds how long the dispatcher sleeps without looking at the queue, so
	// that a jump of the wall clock is noticed.
	maxIdleWait = time.Minute
	// queueLoaders is how many roles are read at once when the queue is rebuilt.
	queueLoaders = 8
	// schedulerWorkers bounds the rotations in flight, so that a hanging Auth0 call never
	// stalls the queue; the mount's rate limiter paces them further.
	schedulerWorkers = 4
	// Retry delays after failed attempts: exponential from retryBase, capped.
	DefaultRetryBase = 10 * time.Second
	DefaultRetryCap  = time.Hour
	// StopWait bounds how long Clean waits for workers: their Auth0 calls are cancelled,
	// and a commit in progress takes at most commitTimeout.
	StopWait = 3 * time.Second
)

// Scheduler runs jobs when they fall due. It runs only where the mount may write (the
// active node of a primary cluster, or a local mount), starting in Initialize, which Vault
// calls again on a new active node after a leadership change, and stopping in Clean.
type Scheduler struct {
	Queue   *rotationQueue
	Storage logical.Storage
	wake    chan struct{} // pokes the dispatcher when the queue changes
	work    chan string
	stop    context.CancelFunc
	done    sync.WaitGroup
	Loaded  chan struct{} // closed once every stored role has been queued

	mu sync.Mutex
	// Unreadable counts consecutive failures to read a due role, for its backoff.
	Unreadable map[string]int

	// index mirrors the due index in storage (due_index.go): role name to its key.
	indexMu sync.Mutex
	Index   map[string]string
}

// noteUnreadable counts one more failure to read name and returns the count.
func (sch *Scheduler) noteUnreadable(name string) int {
	sch.mu.Lock()
	defer sch.mu.Unlock()
	sch.Unreadable[name]++
	return sch.Unreadable[name]
}

func (sch *Scheduler) clearUnreadable(name string) {
	sch.mu.Lock()
	defer sch.mu.Unlock()
	delete(sch.Unreadable, name)
}

// enqueue sets when name falls due; a zero time takes it out of the queue.
func (sch *Scheduler) enqueue(name string, due time.Time) {
	if due.IsZero() {
		sch.Queue.Remove(name)
	} else {
		sch.Queue.Schedule(name, due)
	}
	select {
	case sch.wake <- struct{}{}:
	default:
	}
}

// initialize starts the scheduler when this node may write storage.
// Rotations left in flight by a crash are found before Initialize returns, so that creds
// reads of their roles wait for reconciliation instead of serving a secret Auth0 may have
// replaced; the reconciliation itself runs in the background.
func (b *Engine) InitializeMount(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.host.WriteSafeReplicationState() {
		b.logger().Debug("storage is read-only here (standby or secondary); scheduled rotations run elsewhere")
		return nil
	}
	left, err := b.leftInFlight(ctx, req.Storage)
	if err != nil {
		b.logger().Error("could not look for rotations left in flight; retrying in the background", "error", err)
	}
	b.startScheduler(req.Storage, left, err == nil)
	return nil
}

// inFlight is what a crash may have left in flight: rotations, and role writes.
type inFlight struct {
	rotations  []PendingRotation
	roleWrites map[string][]string
}

// leftInFlight lists what a crash left in flight and holds the reads of its roles until
// each is resolved.
func (b *Engine) leftInFlight(ctx context.Context, s logical.Storage) (inFlight, error) {
	var left inFlight
	var err error
	if left.rotations, err = b.PendingRotations(ctx, s); err != nil {
		return left, err
	}
	if left.roleWrites, err = b.pendingRoleWrites(ctx, s); err != nil {
		return left, err
	}
	b.holdCreds(left.rotations)
	for name := range left.roleWrites {
		b.holdRole(name)
	}
	return left, nil
}

func (b *Engine) startScheduler(s logical.Storage, pending inFlight, pendingListed bool) {
	ctx, stop := context.WithCancel(b.ctx)
	sch := &Scheduler{
		Queue:   NewRotationQueue(),
		Storage: s,
		wake:    make(chan struct{}, 1),
		work:    make(chan string),
		stop:    stop,
		Loaded:  make(chan struct{}),

		Unreadable: make(map[string]int),
		Index:      make(map[string]string),
	}
	b.Sched.Store(sch)

	sch.done.Add(1)
	go func() {
		defer sch.done.Done()
		b.guard("scheduler startup", func() { b.startup(ctx, sch, pending, pendingListed) })
		if !b.ManualDispatch {
			// Dispatch from the queue the due index gave, while every role is read to
			// correct it.
			sch.done.Add(1)
			go func() {
				defer sch.done.Done()
				b.guard("scheduler dispatch", func() { b.dispatch(ctx, sch) })
			}()
		}
		b.VerifyQueue(ctx, sch)
		close(sch.Loaded)
		if b.ManualDispatch {
			close(sch.work)
		}
	}()
	if b.ManualDispatch {
		return
	}
	sch.done.Add(schedulerWorkers)
	for i := 0; i < schedulerWorkers; i++ {
		go func() {
			defer sch.done.Done()
			for name := range sch.work {
				b.runDue(ctx, sch, name)
			}
		}()
	}
}

// startup brings the mount to a state where the scheduler may dispatch: it finishes what
// a crash left in flight, then loads the queue from the due index (verifyQueue then reads
// every role). Every step is retried with backoff until it succeeds or the mount stops.
func (b *Engine) startup(ctx context.Context, sch *Scheduler, pending inFlight, pendingListed bool) {
	if !pendingListed {
		err := b.retryUntil(ctx, "listing rotations left in flight", func() (err error) {
			pending, err = b.leftInFlight(ctx, sch.Storage)
			return err
		})
		if err != nil {
			return
		}
	}
	b.repairRoleWrites(ctx, sch.Storage, pending)
	if _, _, err := b.RunRootJob(ctx, sch.Storage, TriggerReconcile); err != nil {
		b.logger().Error("could not resolve an interrupted root rotation; will retry", "error", err)
	}
	b.ReconcilePending(ctx, sch.Storage, pending.rotations)
	b.LoadQueue(ctx, sch)
}

// runDue runs the job of a key the queue says is due.
func (b *Engine) runDue(ctx context.Context, sch *Scheduler, name string) {
	defer b.recoverJob()
	if name == DriftQueueKey {
		b.runDriftSweep(ctx, sch)
		return
	}
	if name == RootQueueKey {
		if _, resp, err := b.RunRootJob(ctx, sch.Storage, triggerScheduled); err != nil || resp != nil {
			b.logger().Warn("scheduled root rotation failed", "error", failureMessage(resp, err))
		}
		return
	}
	_, _, resp, err := b.runRoleJob(ctx, sch.Storage, name, triggerScheduled)
	if err != nil && !errors.Is(err, ErrRoleNotFound) || resp != nil && resp.IsError() {
		b.logger().Warn("scheduled rotation failed", "role", name, "error", failureMessage(resp, err))
	}
}

// RunDueNow runs, one after the other on the caller's goroutine, every job due at the
// clock's current time, and returns how many ran. Tests drive a scheduler with
// manualDispatch this way, deterministically.
func (b *Engine) RunDueNow(ctx context.Context) int {
	sch := b.Sched.Load()
	if sch == nil {
		return 0
	}
	n := 0
	for {
		name, ok := sch.Queue.PopDue(b.Clock.Now())
		if !ok {
			return n
		}
		b.runDue(ctx, sch, name)
		if name != DriftQueueKey { // a sweep is no job of its own: it runs checks, or rotations counted apart
			n++
		}
	}
}

// StopScheduler stops dispatching and waits, at most stopWait, for the workers: Clean
// cancels their Auth0 calls first, so a request not yet sent is abandoned and one already
// sent leaves its write-ahead entry for reconciliation.
func (b *Engine) StopScheduler() {
	sch := b.Sched.Swap(nil)
	if sch == nil {
		return
	}
	sch.stop()
	stopped := make(chan struct{})
	go func() {
		sch.done.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(StopWait):
		b.logger().Warn("scheduler workers still busy at shutdown; their rotations are resolved at the next start")
	}
}

// retryUntil runs fn until it succeeds, waiting with backoff between attempts and logging
// each failure, or until ctx ends.
func (b *Engine) retryUntil(ctx context.Context, what string, fn func() error) error {
	for failures := 1; ; failures++ {
		err := fn()
		if err == nil {
			return nil
		}
		delay := b.backoff(failures)
		b.logger().Error("startup step failed; retrying", "step", what, "error", err, "consecutive_failures", failures, "retry_in", delay.String())
		if err := clock.Sleep(ctx, b.Clock, delay); err != nil {
			return err
		}
	}
}

// LoadQueue queues every role of the due index (due_index.go) at its indexed time, and
// the root rotation: one LIST and one read, however many roles. verifyQueue corrects it.
func (b *Engine) LoadQueue(ctx context.Context, sch *Scheduler) {
	start := time.Now()
	due, current, stale, err := model.LoadDueIndex(ctx, sch.Storage)
	if err != nil {
		b.logger().Warn("could not list the due index; the queue is built from the roles alone", "error", err)
	}
	sch.indexMu.Lock()
	for name, t := range due {
		sch.enqueue(name, t)
		sch.Index[name] = current[name]
	}
	sch.indexMu.Unlock()
	for _, k := range stale {
		if err := sch.Storage.Delete(ctx, model.DueIndexPrefix+k); err != nil {
			b.logger().Warn("could not delete a stale due index entry", "key", k, "error", err)
		}
	}
	if err := b.retryUntil(ctx, "reading config for the root rotation schedule", func() error {
		cfg, err := model.LoadConfig(ctx, sch.Storage)
		if err == nil {
			b.ScheduleRoot(cfg)
			b.ScheduleDriftSweep(cfg)
			b.Metrics.SetRoleLabels(cfg != nil && cfg.MetricsRoleLabels)
		}
		return err
	}); err != nil {
		return
	}
	b.logger().Info("rotation queue loaded", "source", "due index", "roles", len(due), "queued", sch.Queue.Len(), "duration", time.Since(start).String())
}

// VerifyQueue reads every stored role and queues it at the due time its entry says,
// correcting what the due index got wrong (and the index with it). Listing is retried with
// backoff until it succeeds. A role that cannot be read is queued for a retry with
// backoff instead, like a due role whose read fails: one unreadable entry (a storage
// error, or a stray file a crash left in Vault's file backend) must not hold back the
// other roles. Roles are read by queueLoaders goroutines at once.
func (b *Engine) VerifyQueue(ctx context.Context, sch *Scheduler) {
	start := time.Now()
	var names []string
	if err := b.retryUntil(ctx, "listing roles", func() (err error) {
		names, err = sch.Storage.List(ctx, model.RoleStoragePrefix)
		return err
	}); err != nil {
		return
	}
	failed := b.queueRoles(ctx, sch, names)
	if ctx.Err() != nil {
		return
	}
	for _, f := range failed {
		b.retryUnreadableIn(sch, f.name, f.err)
	}
	// Index entries of roles that no longer exist (a delete whose index update failed).
	exists := make(map[string]bool, len(names))
	for _, n := range names {
		exists[n] = true
	}
	sch.indexMu.Lock()
	var gone []string
	for name := range sch.Index {
		if !exists[name] {
			gone = append(gone, name)
		}
	}
	sch.indexMu.Unlock()
	for _, name := range gone {
		b.dropIfGone(ctx, sch, name)
	}
	b.logger().Info("rotation queue verified against every role", "roles", len(names), "queued", sch.Queue.Len(), "unreadable", len(failed), "duration", time.Since(start).String())
	// Every role is known now: the drift sweep goes to the first one's check.
	if cfg, err := model.LoadConfig(ctx, sch.Storage); err == nil {
		b.queueDriftSweep(sch, driftPeriod(cfg))
	}
}

// roleReadFailure is a role queueRoles could not read, with why.
type roleReadFailure struct {
	name string
	err  error
}

// queueRoles queues the named roles, queueLoaders at a time, and returns those that could
// not be read.
func (b *Engine) queueRoles(ctx context.Context, sch *Scheduler, names []string) []roleReadFailure {
	work := make(chan string)
	var mu sync.Mutex
	var failed []roleReadFailure
	var legacy []string
	var wg sync.WaitGroup
	for i := 0; i < queueLoaders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := b.queueRole(ctx, sch, name, false)
				mu.Lock()
				switch {
				case errors.Is(err, errLegacyLayout):
					legacy = append(legacy, name)
				case err != nil:
					failed = append(failed, roleReadFailure{name, err})
				}
				mu.Unlock()
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
	// Roles in v0.1.0's layout are upgraded one by one, by name, so that where v0.1.0 let
	// two roles share an application the first by name owns it, on every start alike.
	sort.Strings(legacy)
	for _, name := range legacy {
		if err := b.queueRole(ctx, sch, name, true); err != nil {
			failed = append(failed, roleReadFailure{name, fmt.Errorf("upgrading from v0.1.0's layout: %w", err)})
		}
	}
	return failed
}

// errLegacyLayout is queueRole's answer for a role in v0.1.0's layout that it may not
// upgrade yet.
var errLegacyLayout = errors.New("role in v0.1.0's storage layout")

// queueRole queues one stored role, upgrading it from an older layout first when upgrade
// is set (else it returns errLegacyLayout). A role whose schedule cannot produce a due time
// is marked blocked and reported, never queued. It holds the role's lock so that a
// concurrent change to the role, which requeues it, cannot be overtaken by this older read.
func (b *Engine) queueRole(ctx context.Context, sch *Scheduler, name string, upgrade bool) error {
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()
	role, err := model.LoadRole(ctx, sch.Storage, name)
	if err != nil || role == nil {
		return err
	}
	if role.Legacy() {
		if !upgrade {
			return errLegacyLayout
		}
		if err := b.UpgradeRoleLocked(ctx, sch.Storage, name, role); err != nil {
			return err
		}
	}
	if problem := role.ScheduleProblem(b.Clock.Now()); problem != "" && role.Blocked == "" {
		role.Blocked = problem
		b.logger().Error("role not rotated until its operator acts", "role", name, "reason", problem)
		if err := b.StoreRoleState(ctx, sch.Storage, name, role); err != nil {
			return err
		}
	}
	due := DueTime(role, b.Clock.Now())
	b.roleHealth.note(name, role)
	sch.enqueue(name, due)
	b.indexDue(sch, name, due)
	return nil
}

// dispatch hands due jobs to the workers. It sleeps until the head of the queue falls due
// or the queue changes, and pops a job only when a worker is free to take it, so a burst
// of due roles stays ordered in the queue and is worked off at the pace of the workers and
// the rate limiter.
func (b *Engine) dispatch(ctx context.Context, sch *Scheduler) {
	defer close(sch.work)
	for {
		for {
			name, ok := sch.Queue.PopDue(b.Clock.Now())
			if !ok {
				break
			}
			select {
			case sch.work <- name:
			case <-ctx.Done():
				sch.Queue.Schedule(name, b.Clock.Now())
				return
			}
		}
		var timer <-chan time.Time
		stopTimer := func() bool { return false }
		if next, ok := sch.Queue.Peek(); ok {
			wait := next.Sub(b.Clock.Now())
			if wait > maxIdleWait {
				wait = maxIdleWait
			}
			timer, stopTimer = b.Clock.NewTimer(wait)
		}
		select {
		case <-ctx.Done():
			stopTimer()
			return
		case <-sch.wake:
		case <-timer:
		}
		stopTimer()
	}
}

// Schedule (re)queues a role after a change to it; callers hold the role's lock so that
// the queue always follows the latest stored state.
func (b *Engine) Schedule(name string, role *model.RoleEntry) {
	sch := b.Sched.Load()
	if sch == nil {
		return
	}
	var due time.Time
	if role != nil {
		due = DueTime(role, b.Clock.Now())
		sch.clearUnreadable(name)
	}
	b.roleHealth.note(name, role)
	sch.enqueue(name, due)
	b.indexDue(sch, name, due)
}

// retryUnreadable requeues a role whose entry could not be read when its job ran, after
// a backoff that grows with each consecutive failure (kept in memory: the failure cannot
// be recorded on a role that cannot be read).
func (b *Engine) retryUnreadable(name string, err error) {
	if sch := b.Sched.Load(); sch != nil {
		b.retryUnreadableIn(sch, name, err)
	}
}

func (b *Engine) retryUnreadableIn(sch *Scheduler, name string, err error) {
	failures := sch.noteUnreadable(name)
	delay := b.backoff(failures)
	b.logger().Error("could not read stored state; its scheduled rotations wait until it can be read", "job", name, "error", err, "consecutive_failures", failures, "retry_in", delay.String())
	sch.enqueue(name, b.Clock.Now().Add(delay))
}

// dropIfGone takes a role that the index has but the role list had not out of the queue
// and the index, if it still does not exist once its lock is held (it may have been
// created since the list).
func (b *Engine) dropIfGone(ctx context.Context, sch *Scheduler, name string) {
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()
	role, err := model.LoadRole(ctx, sch.Storage, name)
	if err != nil || role != nil {
		return
	}
	sch.Queue.Remove(name)
	b.indexDue(sch, name, time.Time{})
}

// indexDue records name's due time in the index (zero: not queued), if it changed: the
// new entry first, then the old one goes. Best effort: a failure is logged, and the next
// change or start repairs it.
func (b *Engine) indexDue(sch *Scheduler, name string, due time.Time) {
	if name == RootQueueKey {
		return
	}
	sch.indexMu.Lock()
	defer sch.indexMu.Unlock()
	old := sch.Index[name]
	var key string
	if !due.IsZero() {
		key = strings.TrimPrefix(model.DueIndexKey(name, due), model.DueIndexPrefix)
	}
	if key == old {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), commitTimeout)
	defer cancel()
	if key != "" {
		if err := sch.Storage.Put(ctx, &logical.StorageEntry{Key: model.DueIndexPrefix + key}); err != nil {
			b.logger().Warn("could not update the due index (the next start reads the role instead)", "role", name, "error", err)
			return
		}
		sch.Index[name] = key
	} else {
		delete(sch.Index, name)
	}
	if old != "" {
		if err := sch.Storage.Delete(ctx, model.DueIndexPrefix+old); err != nil {
			b.logger().Warn("could not delete an old due index entry (the next start does)", "role", name, "error", err)
		}
	}
}
