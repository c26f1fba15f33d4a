package auth0

import (
	"flag"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/consumers"
)

var (
	consumerSeed = flag.Uint64("consumers.seed", 0, "seed of TestConsumersGetEveryCredentialInTime; 0 derives one from the time and prints it")
	consumerDays = flag.Float64("consumers.days", 1, "virtual days TestConsumersGetEveryCredentialInTime runs each scenario")
)

// consumerScenario is one role kind and trigger, with its consumers' settings.
type consumerScenario struct {
	kind    string // immediate, staged, keys
	trigger string // period, schedule, manual
	failing bool   // rotations fail for a while, then recover
}

func (sc consumerScenario) String() string {
	s := sc.kind + "/" + sc.trigger
	if sc.failing {
		s += "/failing"
	}
	return s
}

// consumerScenarios is every role kind x trigger, and each kind failing then recovering.
func consumerScenarios() []consumerScenario {
	var out []consumerScenario
	for _, kind := range []string{"immediate", "staged", "keys"} {
		for _, trigger := range []string{"period", "schedule", "manual"} {
			out = append(out, consumerScenario{kind: kind, trigger: trigger})
		}
		out = append(out, consumerScenario{kind: kind, trigger: "period", failing: true})
		out = append(out, consumerScenario{kind: kind, trigger: "schedule", failing: true})
	}
	return out
}

// Lead settings of the scenarios: a staged secret is published stage_period before Auth0
// requires it, a key is attached overlap_period before the previous one is detached. The
// consumers' own delays (CSI poll, ESO refresh) are set well inside them, as the README
// tells operators to.
const (
	consumerPeriod   = time.Hour
	consumerSchedule = "*/40 * * * *" // at :00 and :40: uneven intervals (40m, 20m)
	testConsumerLead = 10 * time.Minute
	consumerCSIPoll  = consumers.DefaultCSIPoll
	consumerESO      = 4 * time.Minute
)

// TestConsumersGetEveryCredentialInTime applies each consumer's rules (internal/consumers:
// every generation of Vault Secrets Operator's, the CSI provider's rotation poll, External
// Secrets Operator's refreshInterval, Vault Agent's ttl) to the engine's creds answers, on
// a virtual clock, for every role kind and trigger, with manual rotations at random times
// and a role whose rotations fail for a while. It checks, whenever the engine acts:
//
//   - staged and key roles: every consumer's copy holds the credential Auth0 requires, as
//     current or next (a staged secret before its switch, a key before the previous one is
//     detached);
//   - immediate roles (where Auth0 requires the new secret the moment it exists): each
//     consumer's copy holds it within the consumer's own delay;
//   - no consumer ever reports an error, and VSO always sees static credentials.
func TestConsumersGetEveryCredentialInTime(t *testing.T) {
	seed := *consumerSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed=%d (replay: go test -run TestConsumersGetEveryCredentialInTime -consumers.seed=%d .)", seed, seed)
	for i, sc := range consumerScenarios() {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			runConsumerScenario(t, sc, seed+uint64(i))
		})
	}
}

func runConsumerScenario(t *testing.T, sc consumerScenario, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	role := map[string]interface{}{}
	switch sc.trigger {
	case "period":
		role["rotation_period"] = consumerPeriod.String()
	case "schedule":
		role["rotation_schedule"] = consumerSchedule
	}
	var e *testEnv
	// The run starts at a time drawn from the seed, so that a seed replays it whole: the
	// schedule's times fall where they fell.
	startAt := time.Date(2030, 1, 7, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Second)
	switch sc.kind {
	case "keys":
		e = newTestEnv(t, keyScopes...)
		e.clock.Set(startAt)
		e.configure()
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": "30s"})
		role["client_id"], role["credential_type"], role["allow_auth_method_change"] = testAppID, "private_key_jwt", true
		role["overlap_period"] = testConsumerLead.String()
		e.ok(logical.UpdateOperation, "roles/app", role)
		e.ok(logical.UpdateOperation, "rotate/app", nil)
		e.advance(31 * time.Second) // the first key is published after propagation_wait
	default:
		e = newTestEnv(t)
		e.clock.Set(startAt)
		role["import_current_secret"] = true
		if sc.kind == "staged" {
			role["rotation_strategy"], role["stage_period"] = "staged", testConsumerLead.String()
		}
		e.configureWithRole(role)
	}
	var failing atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, req *http.Request, clientID string) *emulator.Fault {
		if failing.Load() && clientID == testAppID && p == emulator.BeforeApply && req.Method != http.MethodGet {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})

	start := e.clock.Now()
	keys := []string{"client_id", "client_secret", "previous_client_secret", "next_client_secret"}
	if sc.kind == "keys" {
		keys = []string{"client_id", "private_key", "key_id", "kid", "previous_private_key", "previous_key_id"}
	}
	k := &consumers.Checker{Keys: sc.kind == "keys", Lead: sc.kind != "immediate", LagBound: consumerLagBound}
	k.Required = func() (string, []string) {
		if k.Keys {
			_, attached, _ := e.emu.Credentials(testAppID)
			return "", attached
		}
		return e.appSecret(testAppID), nil
	}
	for i, v := range consumers.VSOVariants {
		k.Consumers = append(k.Consumers, consumers.NewVSO(v, start, seed+uint64(i)))
	}
	k.Consumers = append(k.Consumers, consumers.NewCSI(keys, consumerCSIPoll, start), consumers.NewESO(consumerESO, start), consumers.NewAgent(start))

	// Scripted: manual rotations at random times (every role kind is rotated by hand now
	// and then; a manual-only role only so), and for a failing scenario a window of
	// failures covering one due rotation and some retries.
	end := start.Add(time.Duration(*consumerDays * float64(24*time.Hour)))
	var manual []time.Time
	for at := start.Add(time.Duration(rng.Int64N(int64(consumerPeriod)))); at.Before(end); at = at.Add(consumerPeriod/2 + time.Duration(rng.Int64N(int64(2*consumerPeriod)))) {
		manual = append(manual, at)
	}
	var failFrom, failTo time.Time
	if sc.failing {
		failFrom = start.Add(3*consumerPeriod + time.Duration(rng.Int64N(int64(consumerPeriod))))
		failTo = failFrom.Add(consumerPeriod/2 + time.Duration(rng.Int64N(int64(consumerPeriod))))
	}

	read := func() (map[string]any, error) {
		resp, err := e.request(logical.ReadOperation, "creds/app", nil)
		switch {
		case err != nil:
			return nil, err
		case resp.IsError():
			return nil, resp.Error()
		}
		return resp.Data, nil
	}
	k.Check(start, false)
	for now := e.clock.Now(); now.Before(end); now = e.clock.Now() {
		next := end
		for _, c := range k.Consumers {
			if d := c.Due(); !d.IsZero() && d.Before(next) {
				next = d
			}
		}
		if due, ok := e.b.Sched.Load().Queue.Peek(); ok && due.Before(next) {
			next = due
		}
		for len(manual) > 0 && !manual[0].After(now) {
			manual = manual[1:]
		}
		if len(manual) > 0 && manual[0].Before(next) {
			next = manual[0]
		}
		for _, b := range []time.Time{failFrom, failTo} {
			if b.After(now) && b.Before(next) {
				next = b
			}
		}
		if next.After(now) {
			e.clock.Set(next)
			now = next
		}
		failing.Store(!failFrom.IsZero() && !now.Before(failFrom) && now.Before(failTo))
		e.runDue()
		observe := func() {
			if data, err := read(); err == nil {
				k.Observe(now, data)
			}
		}
		observe()
		k.Check(now, false)
		if len(manual) > 0 && !manual[0].After(now) {
			manual = manual[1:]
			// A manual rotation: a staged role stages (or, staged already, does nothing);
			// a key role rotates unless its previous key is still attached.
			resp, err := e.request(logical.UpdateOperation, "rotate/app", nil)
			switch {
			case err != nil && !failing.Load():
				t.Fatalf("manual rotation: %v", err)
			case err == nil && resp.IsError() && !failing.Load():
				t.Logf("manual rotation at %s refused: %v", now.Sub(start), resp.Error())
			}
			observe()
			k.Check(now, true)
		}
		for _, c := range k.Consumers {
			if d := c.Due(); !d.IsZero() && !d.After(now) {
				c.Step(now, read)
			}
		}
		k.Check(now, false)
	}
	lines := k.Finish(4)
	for _, p := range k.Problems {
		t.Errorf("%s: %s", sc, p)
	}
	t.Logf("%s: %d changes at Auth0 in %s; %s", sc, k.Changes, end.Sub(start), strings.Join(lines, "; "))
}

// consumerLagBound is how long after a change at Auth0 a consumer may still hold the old
// secret: its own delay.
func consumerLagBound(c consumers.Consumer, manual bool) time.Duration {
	maxTTL := model.DefaultMaxTTL
	if c.Name() == "vso-0.4.0" {
		maxTTL += maxTTL / 20 // its jitter: up to 5% of ttl
	}
	switch name := c.Name(); {
	case strings.HasPrefix(name, "csi"):
		return consumerCSIPoll + time.Second
	case strings.HasPrefix(name, "eso"):
		return consumerESO + time.Second
	case manual:
		// Seen at the consumer's next read: within max_ttl for those that re-read at ttl.
		return maxTTL + 2*time.Second
	case name == "vso-1.4", name == "vault-agent":
		return 2 * time.Second
	default:
		// VSO before 1.4 schedules its next sync from the ttl of the last answer it wrote.
		return maxTTL + 2*time.Second
	}
}

// A rotation that ends a run of failures does not leave the next scheduled rotation
// sooner than consumers were told to read again: while it failed, creds pointed them at
// the next attempt, not at the schedule, so a scheduled rotation right after the
// recovering one would find them holding the replaced secret (found by
// TestConsumersGetEveryCredentialInTime, seed 1796617093018938877).
func TestRecoveringRotationKeepsConsumersAhead(t *testing.T) {
	e := newTestEnv(t)
	e.clock.Set(time.Date(2030, 1, 7, 4, 10, 0, 0, time.UTC))
	e.configureWithRole(map[string]interface{}{"rotation_schedule": "*/40 * * * *", "import_current_secret": true})
	var failing atomic.Bool
	failing.Store(true)
	e.emu.SetFaults(func(p emulator.Phase, req *http.Request, clientID string) *emulator.Fault {
		if failing.Load() && clientID == testAppID && p == emulator.BeforeApply && req.Method != http.MethodGet {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	// The 04:40 rotation and its retries fail, until one is due after 05:00.
	slot := time.Date(2030, 1, 7, 5, 0, 0, 0, time.UTC)
	for e.clock.Now().Before(slot.Add(-time.Minute)) && !e.storedRole("app").NextAttempt.After(slot) {
		e.advance(30 * time.Second)
	}
	if r := e.storedRole("app"); r.LastFailure == nil || !r.NextAttempt.After(slot) {
		t.Fatalf("by %s no failed retry was due after %s: %+v, next attempt %s", e.clock.Now(), slot, r.LastFailure, r.NextAttempt)
	}
	e.advance(slot.Add(-4 * time.Minute).Sub(e.clock.Now())) // 04:56: a consumer reads
	told := e.ok(logical.ReadOperation, "creds/app", nil)
	readAgain := e.clock.Now().Add(time.Duration(told["ttl"].(int64)) * time.Second)
	e.advance(2 * time.Minute)
	failing.Store(false)
	e.ok(logical.UpdateOperation, "rotate/app", nil) // recovers at 04:58, before that read's ttl is out
	next := e.storedRole("app").NextVaultRotation
	if next.Before(readAgain) {
		t.Fatalf("after the recovering rotation at %s the next is at %s, before a consumer told at %s to read again at %s would",
			e.clock.Now().Format("15:04:05"), next.Format("15:04:05"), e.clock.Now().Format("15:04:05"), readAgain.Format("15:04:05"))
	}
	if want := time.Date(2030, 1, 7, 5, 40, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next rotation %s, want the schedule's next time after that, %s", next, want)
	}
}
