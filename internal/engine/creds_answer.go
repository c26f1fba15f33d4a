package engine

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"time"
)

// readAgain is when creds tell consumers to read again, and what they report as
// last_vault_rotation: the contract that keeps every consumer that re-reads at ttl
// (Vault Agent, Vault Secrets Operator) in step with the engine.
type readAgain struct {
	// Since is last_vault_rotation: the latest moment the answer changed or was
	// confirmed. It moves forward every time ttl runs out, so that a consumer which
	// re-reads then, and refuses an answer whose last_vault_rotation did not move as one
	// not rotated yet (VSO does), accepts it.
	Since time.Time
	// At is when ttl runs out: the next change a consumer must see (the next rotation,
	// publication, switch, key publication, or while rotations fail the next attempt), or
	// max_ttl after the last moment the answer was confirmed, whichever comes first.
	At time.Time
}

// ReadAgainAt computes, for a read of the current version at now, when the consumer
// should read again and what last_vault_rotation reports.
//
// The answer changes at the events the engine stores (a rotation, a publication, a
// switch, a failed attempt: their latest is the base below) and, between them, only by
// a manual rotation, which is an event too. So between events, the engine confirms the
// answer every max_ttl: each confirmation point is a "rotation" for consumers that count
// them, with nothing to rewrite; a manual rotation reaches them at the next one. A
// consumer that re-reads while the due event's job has not run yet finds
// last_vault_rotation unchanged and ttl at its 1 second floor: it reads again, and finds
// the change a moment later.
func ReadAgainAt(c *model.CredsEntry, now time.Time) readAgain {
	base := model.Later(c.LastEvent, c.Current.CreatedTime)
	if c.Next != nil {
		base = model.Later(base, c.Next.CreatedTime)
	}
	step := c.MaxTTLOrDefault()
	next := nextChange(c)
	// Confirmation points stop at a due event whose job has not run yet: one that passed
	// meanwhile would tell a consumer the answer is new while the change is still to come.
	until := now
	if !next.IsZero() && next.Before(until) {
		until = next
	}
	since := base
	if until.After(base) {
		since = base.Add(until.Sub(base) / step * step)
	}
	at := since.Add(step)
	if !next.IsZero() && next.Before(at) {
		at = next
	}
	return readAgain{Since: since, At: at}
}
