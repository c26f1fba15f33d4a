package consumers

import (
	"fmt"
	"time"
)

// CSI is a pod volume of the Secrets Store CSI driver with the Vault provider: one
// SecretProviderClass object per key (objectName = secretKey), all of one secretPath. The
// driver mounts at pod start and, with --enable-secret-rotation, reads the path again
// every rotation poll interval (default 2m); a key missing from an answer fails the whole
// mount (at start: the pod does not start; at a rotation: the old files stay).
type CSI struct {
	state
	keys []string
	poll time.Duration
}

// DefaultCSIPoll is the driver's default --rotation-poll-interval.
const DefaultCSIPoll = 2 * time.Minute

// NewCSI starts a CSI volume naming keys, mounted at start, polled every poll.
func NewCSI(keys []string, poll time.Duration, start time.Time) *CSI {
	return &CSI{state: state{due: start}, keys: keys, poll: poll}
}

func (c *CSI) Name() string { return fmt.Sprintf("csi-poll-%s", c.poll) }

func (c *CSI) Step(now time.Time, read Read) {
	c.due = now.Add(c.poll)
	data, err := read()
	if err != nil {
		c.errs.add(now, "provider mount err: %v", err)
		return
	}
	files := make(map[string]string, len(c.keys))
	for _, k := range c.keys {
		v, ok := data[k]
		if !ok {
			c.errs.add(now, "key %q does not exist at the secret path", k)
			return
		}
		files[k] = render(v)
	}
	c.store(files, nil)
}

// ESO is an ExternalSecret whose data comes from a VaultDynamicSecret generator: it
// reads the path every refreshInterval, ignoring ttl, and writes every key of the answer
// to a Kubernetes Secret; a failed read keeps the Secret and is retried with backoff.
type ESO struct {
	state
	refresh  time.Duration
	failures int
}

// NewESO starts an ExternalSecret refreshed every refresh, first synced at start.
func NewESO(refresh time.Duration, start time.Time) *ESO {
	return &ESO{state: state{due: start}, refresh: refresh}
}

func (c *ESO) Name() string { return fmt.Sprintf("eso-refresh-%s", c.refresh) }

func (c *ESO) Step(now time.Time, read Read) {
	data, err := read()
	if err != nil {
		c.errs.add(now, "could not get secret data from provider: %v", err)
		c.failures++
		c.due = now.Add(min(5*time.Second<<min(c.failures-1, 4), c.refresh))
		return
	}
	c.failures = 0
	c.due = now.Add(c.refresh)
	c.store(renderAll(data), nil)
}

// Agent is Vault Agent (1.13 and later) rendering a template of the path: a secret
// without a lease is read again at its ttl when rotation_period (or rotation_schedule) is
// present, else every static_secret_render_interval (default 5m); a failed read is
// retried with backoff and the file kept.
type Agent struct {
	state
	failures int
}

// NewAgent starts an Agent that renders at start.
func NewAgent(start time.Time) *Agent { return &Agent{state: state{due: start}} }

func (c *Agent) Name() string { return "vault-agent" }

func (c *Agent) Step(now time.Time, read Read) {
	data, err := read()
	if err != nil {
		c.errs.add(now, "template server: %v", err)
		c.failures++
		c.due = now.Add(min(250*time.Millisecond<<min(c.failures, 8), time.Minute))
		return
	}
	c.failures = 0
	interval := 5 * time.Minute
	_, hasPeriod := data["rotation_period"]
	_, hasSchedule := data["rotation_schedule"]
	if ttl, err := asInt(data["ttl"]); err == nil && ttl > 0 && (hasPeriod || hasSchedule) {
		interval = time.Duration(ttl) * time.Second
	}
	c.due = now.Add(interval)
	// A template renders the credential, not the countdown.
	c.store(renderAll(data), map[string]bool{"ttl": true, "last_vault_rotation": true})
}
