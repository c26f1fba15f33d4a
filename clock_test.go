package auth0

import (
	"sort"
	"sync"
	"time"
)

// fakeClock is a virtual clock. Time moves only when Advance is called, or, with
// autoAdvance, when something waits on it: a wait then jumps the clock to its end at once.
// autoAdvance suits code that runs on the test's goroutine (runDueNow); Advance suits
// tests that let background goroutines wait on timers.
type fakeClock struct {
	mu          sync.Mutex
	now         time.Time
	timers      []*fakeTimer
	autoAdvance bool
	// added is signalled whenever a timer is registered (awaitTimer).
	added *sync.Cond
}

type fakeTimer struct {
	at      time.Time
	ch      chan time.Time
	stopped bool
}

func newFakeClock(start time.Time) *fakeClock {
	c := &fakeClock{now: start}
	c.added = sync.NewCond(&c.mu)
	return c
}

// awaitTimer blocks until some goroutine waits on a timer at least d from now: how a
// test knows that a background goroutine reached a wait on the virtual clock.
func (c *fakeClock) awaitTimer(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, t := range c.timers {
			if !t.stopped && !t.at.Before(c.now.Add(d)) {
				return
			}
		}
		c.added.Wait()
	}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	auto := c.autoAdvance
	c.added.Broadcast()
	c.mu.Unlock()
	if d <= 0 {
		c.Advance(0)
	} else if auto {
		c.Advance(d)
	}
	stop := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
	return t.ch, stop
}

// setAutoAdvance turns autoAdvance on or off.
func (c *fakeClock) setAutoAdvance(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.autoAdvance = on
}

// Advance moves the clock forward by d and fires every timer due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			t.ch <- c.now
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Set moves the clock to t (forward only).
func (c *fakeClock) Set(t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}
