package engine

import (
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/metrics"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// OverdueGrace is how late a due role may be before auth0/status and the metrics call it
// overdue: the dispatcher, the rate limiter and the workers take a moment, so a role still
// due a minute after means the scheduler is behind.
const OverdueGrace = time.Minute

// roleHealth is what the metrics report of each role: kept up to date wherever the
// scheduler learns a role's state (Schedule, and the pass that reads every role at start).
type roleHealth struct {
	mu      sync.Mutex
	failing map[string]bool
	blocked map[string]bool
	drifted map[string]bool
	known   map[string]bool
}

func newRoleHealth() *roleHealth {
	return &roleHealth{failing: map[string]bool{}, blocked: map[string]bool{}, drifted: map[string]bool{}, known: map[string]bool{}}
}

// names are the roles known, for the drift sweep.
func (h *roleHealth) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.known))
	for name := range h.known {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// note records role's state; a nil role is one that is gone.
func (h *roleHealth) note(name string, role *model.RoleEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if role == nil {
		delete(h.known, name)
		delete(h.failing, name)
		delete(h.blocked, name)
		delete(h.drifted, name)
		return
	}
	h.known[name] = true
	setFlag(h.failing, name, role.LastFailure != nil)
	setFlag(h.blocked, name, role.Blocked != "")
	setFlag(h.drifted, name, role.DriftDetected != nil)
}

func setFlag(m map[string]bool, name string, on bool) {
	if on {
		m[name] = true
	} else {
		delete(m, name)
	}
}

// health is the roles' state for the metrics' gauges.
func (b *Engine) health() metrics.Health {
	var h metrics.Health
	b.roleHealth.mu.Lock()
	h.Roles, h.Failing, h.Halted, h.Drifted = len(b.roleHealth.known), len(b.roleHealth.failing), len(b.roleHealth.blocked), len(b.roleHealth.drifted)
	b.roleHealth.mu.Unlock()
	if sch := b.Sched.Load(); sch != nil {
		h.Queued = sch.Queue.Len()
		h.Overdue = sch.Queue.CountDueBefore(b.Clock.Now().Add(-OverdueGrace))
	}
	return h
}

// kindLabel names a kind in metrics: its credential type, and its strategy if it has one.
func kindLabel(k CredentialKind) string {
	if s := k.Strategy(); s != "" {
		return k.CredentialType() + "/" + s
	}
	return k.CredentialType()
}

// jobOutcome names how a job ended, for metrics.
func jobOutcome(committed bool, resp *logical.Response, err error) string {
	switch {
	case err != nil:
		return "failed"
	case resp != nil && resp.IsError():
		return "refused"
	case committed:
		return "rotated"
	}
	return "unchanged"
}
