package auth0

import (
	"context"
	"time"
)

// clock is the engine's source of time. Everything that waits or decides by the time (the
// scheduler, retry backoff, the rate limiter, reconciliation and root verification) asks
// it, so that tests run virtual days without sleeping.
type clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once d has passed, and a function that
	// stops the timer.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// sleep waits d on c, or until ctx ends.
func sleep(ctx context.Context, c clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	ch, stop := c.NewTimer(d)
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
