package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/consumers"
)

// Real-time settings of TestConsumersOnRealVault: short enough to see several changes of
// every role in a few minutes; the consumers' own delays (CSI poll, ESO refresh, max_ttl)
// well inside the leads (stage_period, overlap_period), as the README tells operators.
const (
	liveRun      = 150 * time.Second
	livePeriod   = 40 * time.Second
	liveSchedule = "* * * * *"
	liveLead     = 20 * time.Second
	liveMaxTTL   = 10 * time.Second
	liveCSIPoll  = 5 * time.Second
	liveESO      = 8 * time.Second
	liveTick     = 50 * time.Millisecond
	// liveSlack is what a loaded machine may add to a consumer's delay: the scheduler's
	// job starting late, a read taking long.
	liveSlack = 3 * time.Second
)

// liveRole is one role of TestConsumersOnRealVault with its consumers.
type liveRole struct {
	name, clientID string
	kind, trigger  string
	failing        bool
	check          *consumers.Checker
	manual         []time.Time
	failFrom       time.Time
	failTo         time.Time
}

// TestConsumersOnRealVault applies the consumers' rules (internal/consumers: every
// generation of Vault Secrets Operator's, the CSI provider's rotation poll, External
// Secrets Operator's refreshInterval, Vault Agent's ttl) in real time to a real Vault
// with the plugin, for every role kind (immediate, staged, private_key_jwt) and trigger
// (rotation_period, rotation_schedule, manual only), and for a role of each kind whose
// rotations fail for a while and recover: every staged secret and key is in every
// consumer's copy before Auth0 requires it, every immediately rotated secret within the
// consumer's own delay, and no consumer reports an error.
func TestConsumersOnRealVault(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t) // the Management API application may manage keys
	emu, v := f.emu, f.v
	v.MustCLI(t, v.RootToken, "write", mount+"/config", "propagation_wait=2s", "rate_limit=50")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))

	var roles []*liveRole
	failing := map[string]*atomic.Bool{}
	for _, kind := range []string{"immediate", "staged", "keys"} {
		for _, trigger := range []string{"period", "schedule", "manual", "period-failing"} {
			r := &liveRole{name: kind + "-" + trigger, kind: kind, trigger: strings.TrimSuffix(trigger, "-failing"), failing: strings.HasSuffix(trigger, "-failing")}
			r.clientID = r.name + "-id"
			f.addApp(t, r.clientID, r.name)
			failing[r.clientID] = &atomic.Bool{}
			roles = append(roles, r)
		}
	}
	emu.SetFaults(func(p emulator.Phase, req *http.Request, clientID string) *emulator.Fault {
		if b := failing[clientID]; b != nil && b.Load() && p == emulator.BeforeApply && req.Method != http.MethodGet {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})

	for _, r := range roles {
		args := []string{"write", mount + "/roles/" + r.name, "client_id=" + r.clientID, "max_ttl=" + liveMaxTTL.String()}
		switch r.trigger {
		case "period":
			args = append(args, "rotation_period="+livePeriod.String())
		case "schedule":
			args = append(args, "rotation_schedule="+liveSchedule)
		}
		switch r.kind {
		case "keys":
			args = append(args, "credential_type=private_key_jwt", "allow_auth_method_change=true", "overlap_period="+liveLead.String())
		case "staged":
			args = append(args, "import_current_secret=true", "rotation_strategy=staged", "stage_period="+liveLead.String())
		default:
			args = append(args, "import_current_secret=true")
		}
		v.MustCLI(t, v.RootToken, args...)
		if r.kind == "keys" {
			f.rotate(t, v.RootToken, r.name)
		}
	}
	time.Sleep(3 * time.Second) // the first keys are served after propagation_wait

	start := time.Now()
	end := start.Add(liveRun)
	for i, r := range roles {
		r.check = &consumers.Checker{Keys: r.kind == "keys", Lead: r.kind != "immediate", LagBound: liveLagBound}
		clientID := r.clientID
		if r.kind == "keys" {
			r.check.Required = func() (string, []string) {
				_, attached, _ := emu.Credentials(clientID)
				return "", attached
			}
		} else {
			r.check.Required = func() (string, []string) { s, _ := emu.ClientSecret(clientID); return s, nil }
		}
		keys := []string{"client_id", "client_secret", "previous_client_secret", "next_client_secret"}
		if r.kind == "keys" {
			keys = []string{"client_id", "private_key", "key_id", "kid", "previous_private_key", "previous_key_id"}
		}
		for j, variant := range consumers.VSOVariants {
			r.check.Consumers = append(r.check.Consumers, consumers.NewVSO(variant, start, uint64(100*i+j)))
		}
		r.check.Consumers = append(r.check.Consumers, consumers.NewCSI(keys, liveCSIPoll, start), consumers.NewESO(liveESO, start), consumers.NewAgent(start))
		if r.trigger == "manual" {
			for at := start.Add(10*time.Second + time.Duration(rng.Int64N(int64(10*time.Second)))); at.Before(end.Add(-30 * time.Second)); at = at.Add(25*time.Second + time.Duration(rng.Int64N(int64(20*time.Second)))) {
				r.manual = append(r.manual, at)
			}
		}
		if r.failing {
			// Covers the due rotation at livePeriod after the role was written, and its
			// first retries; the engine recovers once it ends.
			r.failFrom, r.failTo = start.Add(30*time.Second), start.Add(55*time.Second)
		}
		r.check.Check(start, false)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	readOf := func(name string) consumers.Read {
		return func() (map[string]any, error) { return liveRead(client, v.Addr, v.RootToken, name) }
	}
	for now := time.Now(); now.Before(end); now = time.Now() {
		for _, r := range roles {
			failing[r.clientID].Store(!r.failFrom.IsZero() && !now.Before(r.failFrom) && now.Before(r.failTo))
			if data, err := liveRead(client, v.Addr, v.RootToken, r.name); err == nil {
				r.check.Observe(now, data) // when the engine published each credential
			}
			r.check.Check(now, false)
			if len(r.manual) > 0 && !r.manual[0].After(now) {
				r.manual = r.manual[1:]
				resp := v.Do(t, v.RootToken, http.MethodPost, mount+"/rotate/"+r.name, map[string]any{})
				if resp.Status >= 300 && !strings.Contains(strings.Join(resp.Errors, " "), "overlap") {
					t.Logf("manual rotation of %s answered %d: %v", r.name, resp.Status, resp.Errors)
				}
				if data, err := liveRead(client, v.Addr, v.RootToken, r.name); err == nil {
					r.check.Observe(time.Now(), data)
				}
				r.check.Check(time.Now(), true)
			}
			for _, c := range r.check.Consumers {
				if d := c.Due(); !d.IsZero() && !d.After(now) {
					c.Step(time.Now(), readOf(r.name))
				}
			}
			r.check.Check(time.Now(), false)
		}
		time.Sleep(liveTick)
	}
	for _, r := range roles {
		lines := r.check.Finish(2)
		for _, p := range r.check.Problems {
			t.Errorf("%s: %s", r.name, p)
		}
		t.Logf("%s: %d changes at Auth0 in %s; %s", r.name, r.check.Changes, liveRun, strings.Join(lines, "; "))
	}
}

// liveLagBound is how long after a change at Auth0 a consumer may still hold the old
// secret: its own delay, and the slack of a loaded machine.
func liveLagBound(c consumers.Consumer, manual bool) time.Duration {
	switch name := c.Name(); {
	case strings.HasPrefix(name, "csi"):
		return liveCSIPoll + liveSlack
	case strings.HasPrefix(name, "eso"):
		return liveESO + liveSlack
	case manual:
		return liveMaxTTL + liveMaxTTL/20 + liveSlack
	case name == "vso-1.4", name == "vault-agent":
		return liveSlack
	default:
		return liveMaxTTL + liveMaxTTL/20 + liveSlack
	}
}

// liveRead reads creds/<name> as a consumer does through Vault's API client: JSON numbers
// kept as json.Number.
func liveRead(client *http.Client, addr, token, name string) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/"+mount+"/creds/"+name, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data   map[string]any `json:"data"`
		Errors []string       `json:"errors"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, strings.Join(body.Errors, "; "))
	}
	return body.Data, nil
}
