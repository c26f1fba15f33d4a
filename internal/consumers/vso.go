package consumers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// VSOVariant is one generation of Vault Secrets Operator's rules for a
// VaultDynamicSecret with allowStaticCreds: true (docs/CONSUMERS.md lists the sources).
type VSOVariant struct {
	Name string
	// MinPeriod is the smallest rotation_period that counts as static credentials
	// (v0.4.0: period > 1; later: >= 1).
	MinPeriod int64
	// StrictParse: a field of the wrong type fails the sync (from v0.8.0); before, it was
	// ignored and the previous value kept.
	StrictParse bool
	// LoopSchedule, LoopPeriod: at a sync whose last_vault_rotation equals the last
	// accepted one, re-read for up to 10s while ttl <= 2 or ttl >= the last accepted ttl
	// (from v0.8.0 for rotation_schedule roles; from v1.3.0 for rotation_period roles too).
	LoopSchedule, LoopPeriod bool
	// ResetCheck: in that loop, also re-read while the countdown expected since the last
	// accepted sync is within 5s of zero (a "TTL reset", from v1.4.0). The model takes the
	// harshest reading: whatever the answered ttl.
	ResetCheck bool
	// FreshStatus: the accepted metadata (ttl, last_vault_rotation) is refreshed at every
	// sync (from v1.4.0); before, only when the Secret was written, so that the next sync
	// comes the written answer's ttl after each sync.
	FreshStatus bool
	// MACAll: the Secret is rewritten when any field changed, ttl included (v0.4.0);
	// later the rotation metadata is left out of the comparison.
	MACAll bool
	// BufferAll: the next sync is ttl + 0.5s for every static role (v0.4.1 to v0.7);
	// from v0.8.0 only for rotation_period roles. JitterPercent: v0.4.0 adds up to 5% of
	// ttl instead of up to 150ms, and no 0.5s.
	BufferAll, JitterPercent bool
	// Backoff: failed syncs are retried after 5s +-50%, x1.5, up to 60s (from v0.7.0);
	// before, after 5 to 7.5s every time.
	Backoff bool
}

// VSOVariants are the generations of the rules in VSO's release history.
var VSOVariants = []VSOVariant{
	{Name: "vso-0.4.0", MinPeriod: 2, MACAll: true, JitterPercent: true},
	{Name: "vso-0.4.1", MinPeriod: 1, BufferAll: true},
	{Name: "vso-0.7", MinPeriod: 1, BufferAll: true, Backoff: true},
	{Name: "vso-0.8", MinPeriod: 1, StrictParse: true, LoopSchedule: true, Backoff: true},
	{Name: "vso-1.3", MinPeriod: 1, StrictParse: true, LoopSchedule: true, LoopPeriod: true, Backoff: true},
	{Name: "vso-1.4", MinPeriod: 1, StrictParse: true, LoopSchedule: true, LoopPeriod: true, ResetCheck: true, FreshStatus: true, Backoff: true},
}

// vsoMeta is what VSO reads of an answer, and keeps as its status.
type vsoMeta struct {
	lvr      int64 // last_vault_rotation, unix seconds
	period   int64
	schedule string
	ttl      int64
}

// vsoMACSkip are the fields left out of the comparison that decides a rewrite (v0.4.1+).
var vsoMACSkip = map[string]bool{"ttl": true, "rotation_schedule": true, "rotation_period": true, "last_vault_rotation": true, "_raw": true}

// VSO is a VaultDynamicSecret with allowStaticCreds: true, writing every field of the
// answer to a Kubernetes Secret.
type VSO struct {
	state
	v   VSOVariant
	rng *rand.Rand

	status      *vsoMeta  // the accepted metadata
	lastRenewal time.Time // when status was last refreshed
	mac         map[string]string

	// The re-read loop of a sync, while it runs.
	loopStart time.Time
	loopWait  time.Duration
	failures  int
	// NotStatic is set when an answer did not count as static credentials: VSO then never
	// re-reads the path by itself.
	NotStatic bool
}

// NewVSO starts a VSO model that reads at start.
func NewVSO(v VSOVariant, start time.Time, seed uint64) *VSO {
	return &VSO{state: state{due: start}, v: v, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

func (c *VSO) Name() string { return c.v.Name }

// Step is one read: a sync, or a re-read of a sync's loop.
func (c *VSO) Step(now time.Time, read Read) {
	data, err := read()
	if err != nil {
		c.fail(now, "reading: %v", err)
		return
	}
	meta, err := c.parse(data)
	if err != nil {
		c.fail(now, "%v", err)
		return
	}
	if meta.lvr <= 0 || meta.period < c.v.MinPeriod && meta.schedule == "" {
		// Not static credentials: written once, never re-read by VSO itself.
		c.NotStatic = true
		c.write(now, data, meta)
		c.due = time.Time{}
		c.loopStart = time.Time{}
		return
	}
	if refused := c.refuse(now, meta); refused != "" {
		if c.loopStart.IsZero() {
			c.loopStart, c.loopWait = now, 0
		}
		// Re-read immediately, then after about 0.5s growing x1.5 up to 2s, for 10s.
		switch {
		case c.loopWait == 0:
			c.loopWait = 500 * time.Millisecond
		default:
			c.loopWait = min(time.Duration(float64(c.loopWait)*1.5), 2*time.Second)
		}
		if next := now.Add(c.loopWait); next.Sub(c.loopStart) <= 10*time.Second {
			c.due = next
			return
		}
		c.loopStart = time.Time{}
		c.fail(now, "static creds not rotated after 10s: %s", refused)
		return
	}
	c.loopStart = time.Time{}
	c.failures = 0
	c.accept(now, data, meta)
}

// refuse is why a sync whose last_vault_rotation did not move waits for a rotation, or "".
func (c *VSO) refuse(now time.Time, m vsoMeta) string {
	s := c.status
	if s == nil || m.lvr != s.lvr {
		return ""
	}
	loop := c.v.LoopSchedule && m.schedule != "" && s.schedule == m.schedule ||
		c.v.LoopPeriod && m.schedule == "" && m.period > 0
	switch {
	case !loop:
		return ""
	case m.ttl <= 2:
		return fmt.Sprintf("near rotation, ttl %d <= 2", m.ttl)
	case m.ttl >= s.ttl:
		return fmt.Sprintf("not rotated: ttl %d >= the last accepted %d", m.ttl, s.ttl)
	case c.v.ResetCheck && float64(s.ttl)-now.Sub(c.lastRenewal).Seconds() <= 5:
		return fmt.Sprintf("TTL reset detected: ttl %d while %.1fs were expected", m.ttl, float64(s.ttl)-now.Sub(c.lastRenewal).Seconds())
	}
	return ""
}

func (c *VSO) parse(data map[string]any) (vsoMeta, error) {
	var m vsoMeta
	var errs []error
	if raw, ok := data["last_vault_rotation"]; ok && raw != nil {
		s, isString := raw.(string)
		t, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case !isString:
			errs = append(errs, fmt.Errorf("last_vault_rotation %v is not a string (the controller panics)", raw))
		case err != nil:
			errs = append(errs, fmt.Errorf("invalid last_vault_rotation %w", err))
		default:
			m.lvr = t.Unix()
		}
	}
	var err error
	if m.period, err = asInt(data["rotation_period"]); err != nil {
		errs = append(errs, errors.New("invalid rotation_period"))
	}
	if m.ttl, err = asInt(data["ttl"]); err != nil {
		errs = append(errs, errors.New("invalid ttl"))
	}
	m.schedule, _ = data["rotation_schedule"].(string)
	if len(errs) > 0 && (c.v.StrictParse || c.status == nil) {
		return m, errors.Join(errs...)
	}
	if len(errs) > 0 { // before v0.8.0: the previous values are kept
		m.lvr, m.period, m.ttl = c.status.lvr, c.status.period, c.status.ttl
	}
	return m, nil
}

// accept takes the answer: the Secret is rewritten if its data changed, and the next
// sync is scheduled from the status' ttl.
func (c *VSO) accept(now time.Time, data map[string]any, m vsoMeta) {
	rendered := renderAll(data)
	skip := vsoMACSkip
	if c.v.MACAll {
		skip = nil
	}
	switch {
	case c.mac == nil || !sameData(c.mac, rendered, skip):
		c.write(now, data, m)
	case c.v.FreshStatus:
		c.status, c.lastRenewal = &m, now
	}
	d := time.Duration(c.status.ttl) * time.Second
	var horizon time.Duration
	switch {
	case d <= 0:
		horizon = time.Second
	case c.v.BufferAll || !c.v.JitterPercent && c.status.period > 0:
		horizon = d + 500*time.Millisecond
	default:
		horizon = d
	}
	if c.v.JitterPercent {
		horizon += time.Duration(c.rng.Int64N(int64(horizon)/20 + 1))
	} else {
		horizon += time.Duration(c.rng.Int64N(int64(150 * time.Millisecond)))
	}
	c.due = now.Add(horizon)
}

func (c *VSO) write(now time.Time, data map[string]any, m vsoMeta) {
	rendered := renderAll(data)
	c.mac = rendered
	c.copy = rendered
	c.writes++
	c.status, c.lastRenewal = &m, now
}

// fail records a failed sync and schedules its retry.
func (c *VSO) fail(now time.Time, format string, args ...any) {
	c.errs.add(now, format, args...)
	c.failures++
	var wait time.Duration
	if c.v.Backoff {
		base := 5 * time.Second
		for i := 1; i < c.failures && base < 60*time.Second; i++ {
			base = time.Duration(float64(base) * 1.5)
		}
		base = min(base, 60*time.Second)
		wait = base/2 + time.Duration(c.rng.Int64N(int64(base)))
	} else {
		wait = 5*time.Second + time.Duration(c.rng.Int64N(int64(2500*time.Millisecond)))
	}
	c.due = now.Add(wait)
}
