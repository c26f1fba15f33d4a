package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// configureStaged configures the engine and creates staged role "app" (imported, hourly,
// published 10 minutes before each rotation).
func (e *testEnv) configureStaged(extra map[string]interface{}) {
	e.t.Helper()
	data := map[string]interface{}{
		"import_current_secret": true, "rotation_strategy": "staged",
		"rotation_period": "1h", "stage_period": "10m",
	}
	for k, v := range extra {
		data[k] = v
	}
	e.configureWithRole(data)
}

// The staged cycle on a schedule: published stage_period before the rotation, nothing
// at Auth0 until the switch, then Vault PATCHes the secret it chose, checks it, and makes
// it current; consumers that fall back to next_client_secret never fail.
func TestStagedCycle(t *testing.T) {
	e := newTestEnv(t)
	e.configureStaged(nil)
	v1 := e.appSecret(testAppID)
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["ttl"] != int64(150) || creds["next_client_secret"] != "" {
		t.Fatalf("before publication: ttl %v (want 150: max_ttl, a quarter of stage_period), next %v", creds["ttl"], creds["next_client_secret"] != "")
	}
	e.advance(49 * time.Minute)
	if creds := e.ok(logical.ReadOperation, "creds/app", nil); creds["ttl"] != int64(60) {
		t.Fatalf("a minute before publication: ttl %v, want 60", creds["ttl"])
	}
	e.advance(time.Minute)
	creds = e.ok(logical.ReadOperation, "creds/app", nil)
	next, _ := creds["next_client_secret"].(string)
	if next == "" || next == v1 || creds["next_version"] != 2 || creds["client_secret"] != v1 || creds["version"] != 1 {
		t.Fatalf("after publication: %v", redactCreds(creds))
	}
	if creds["ttl"] != int64(150) || creds["next_switch_time"] == "" {
		t.Fatalf("ttl %v, next_switch_time %v; want 150 (max_ttl; the switch is in 600)", creds["ttl"], creds["next_switch_time"])
	}
	if len(next) != engine.RootSecretLength || strings.Trim(next, engine.RootSecretAlphabet) != "" {
		t.Fatal("the staged secret is not 64 characters of Auth0's alphabet")
	}
	if st := e.emu.Stats(); st.SecretPatches[testAppID] != 0 || st.Rotations[testAppID] != 0 || !e.authenticates(testAppID, v1) {
		t.Fatal("publishing changed something at Auth0")
	}
	// A consumer following pattern (a): current, else next, else previous.
	consumer := func() bool {
		c := e.ok(logical.ReadOperation, "creds/app", nil)
		for _, k := range []string{"client_secret", "next_client_secret", "previous_client_secret"} {
			if s, ok := c[k].(string); ok && e.authenticates(testAppID, s) {
				return true
			}
		}
		return false
	}
	if !consumer() {
		t.Fatal("a consumer fails after publication")
	}

	e.advance(10 * time.Minute)
	if n := e.emu.Stats().SecretPatches[testAppID]; n != 1 || e.appSecret(testAppID) != next {
		t.Fatalf("%d PATCHes; Auth0 holds the staged secret: %v", n, e.appSecret(testAppID) == next)
	}
	creds = e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != next || creds["previous_client_secret"] != v1 || creds["version"] != 2 || creds["next_client_secret"] != "" {
		t.Fatalf("after the switch: %v", redactCreds(creds))
	}
	if creds["ttl"] != int64(150) {
		t.Fatalf("after the switch ttl = %v, want 150 (max_ttl; the next publication is in 3000)", creds["ttl"])
	}
	if !consumer() {
		t.Fatal("a consumer fails after the switch")
	}
	versions := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	v2 := versions["2"].(map[string]interface{})
	if v2["source"] != model.SourceStaged || v2["verified"] != model.VerifiedReadBack || v2["staged_time"] == nil || v2["switched_time"] == nil {
		t.Fatalf("version 2 = %v", v2)
	}

	// A virtual week: one PATCH an hour, never a rotate-secret, a consumer never fails.
	for i := 0; i < 7*24*6; i++ {
		e.advance(10 * time.Minute)
		if i%7 == 0 && !consumer() {
			t.Fatalf("a consumer failed at %v", e.clock.Now())
		}
	}
	if st := e.emu.Stats(); st.SecretPatches[testAppID] != 1+7*24 || st.Rotations[testAppID] != 0 {
		t.Fatalf("%d PATCHes and %d rotate-secret in a week, want %d and 0", st.SecretPatches[testAppID], st.Rotations[testAppID], 1+7*24)
	}
	if logs := e.logs.String(); strings.Contains(logs, next) || strings.Contains(logs, v1) {
		t.Fatal("a secret appears in the logs")
	}
}

// redactCreds drops secrets from creds for failure messages.
func redactCreds(creds map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range creds {
		if strings.Contains(k, "secret") {
			v = "<redacted>"
		}
		out[k] = v
	}
	return out
}

func TestStagedManualRotate(t *testing.T) {
	e := newTestEnv(t)
	e.configureStaged(map[string]interface{}{"rotation_period": 0})
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if got["next_version"] != 2 || got["version"] != 1 || got["next_switch_time"] == nil || len(got) != 3 {
		t.Fatalf("rotate of a staged role answered %v; want version, next_version, next_switch_time", got)
	}
	switchAt, _ := time.Parse(time.RFC3339, got["next_switch_time"].(string))
	if !switchAt.Equal(e.clock.Now().Add(10 * time.Minute).Truncate(time.Second)) {
		t.Fatalf("switch at %v, want now + stage_period", switchAt)
	}
	staged := e.ok(logical.ReadOperation, "creds/app", nil)["next_client_secret"]
	// Again: nothing changes.
	if again := e.ok(logical.UpdateOperation, "rotate/app", nil); again["next_version"] != 2 {
		t.Fatalf("a second rotate answered %v", again)
	}
	if e.ok(logical.ReadOperation, "creds/app", nil)["next_client_secret"] != staged {
		t.Fatal("a second rotate staged another secret")
	}
	// The staged secret switches at its time, although the role has no schedule.
	e.advance(10 * time.Minute)
	if e.appSecret(testAppID) != staged || e.emu.Stats().SecretPatches[testAppID] != 1 {
		t.Fatal("the manually staged secret did not switch at its time")
	}

	// cancel_staged discards; nothing at Auth0.
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	cancelled := e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"cancel_staged": true})
	if cancelled["cancelled_version"] != 3 || cancelled["next_version"] != nil {
		t.Fatalf("cancel answered %v", cancelled)
	}
	if c := e.ok(logical.ReadOperation, "creds/app", nil); c["next_client_secret"] != "" || c["version"] != 2 {
		t.Fatalf("after cancel creds still serve a next secret: %v", redactCreds(c))
	}
	e.advance(time.Hour)
	if n := e.emu.Stats().SecretPatches[testAppID]; n != 1 {
		t.Fatalf("a cancelled secret was set at Auth0 (%d PATCHes)", n)
	}
	v := e.ok(logical.ReadOperation, "versions/app", nil)
	if c := v["cancelled_staged"].([]map[string]interface{}); len(c) != 1 || c[0]["version"] != 3 {
		t.Fatalf("cancelled_staged = %v", v["cancelled_staged"])
	}

	// switch_now stages and switches at once.
	now := e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true})
	if now["version"] != 3 || e.appSecret(testAppID) != e.ok(logical.ReadOperation, "creds/app", nil)["client_secret"] {
		t.Fatalf("switch_now answered %v, or creds do not serve Auth0's secret", now)
	}
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true, "cancel_staged": true}), "exclude each other")
}

func TestStagedRoleValidation(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	base := map[string]interface{}{"client_id": testAppID, "rotation_strategy": "staged"}
	with := func(extra map[string]interface{}) map[string]interface{} {
		m := map[string]interface{}{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"unknown strategy", with(map[string]interface{}{"rotation_strategy": "gradual"}), `rotation_strategy must be "immediate" or "staged"`},
		{"default stage_period not shorter than the period", with(map[string]interface{}{"rotation_period": "12h"}), "stage_period (24h0m0s, the default) must be shorter than rotation_period (12h0m0s)"},
		{"stage_period not shorter than the period", with(map[string]interface{}{"rotation_period": "1h", "stage_period": "1h"}), "must be shorter than rotation_period"},
		{"stage_period against a schedule", with(map[string]interface{}{"rotation_schedule": "0 */6 * * *", "stage_period": "7h"}), "shortest interval between rotation_schedule's times (6h0m0s)"},
		{"stage_period without staged", map[string]interface{}{"client_id": testAppID, "stage_period": "1h"}, "apply only with rotation_strategy=staged"},
		{"unknown password policy", with(map[string]interface{}{"password_policy": "nope"}), `password_policy "nope" cannot generate a secret`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantContains(t, e.userError(logical.UpdateOperation, "roles/app", tc.data), tc.want)
			if role, _ := model.LoadRole(t.Context(), e.storage, "app"); role != nil {
				t.Fatal("role stored after a rejected write")
			}
		})
	}

	// A role with a staged secret changes strategy only after it switched or was cancelled.
	e.ok(logical.UpdateOperation, "roles/app", with(map[string]interface{}{"import_current_secret": true, "stage_period": "1m"}))
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_strategy": "immediate"}),
		"the role has a staged secret (version 2", "switch_now=true", "cancel_staged=true")
	e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"cancel_staged": true})
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_strategy": "immediate"})
	if got := e.ok(logical.ReadOperation, "roles/app", nil); got["rotation_strategy"] != model.StrategyImmediate || got["stage_period"] != nil {
		t.Fatalf("after the change: %v", got)
	}
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true}), "apply only to roles with rotation_strategy=staged")
}

// A Vault password policy generates the staged secrets.
func TestStagedPasswordPolicy(t *testing.T) {
	e := newTestEnv(t)
	e.b.Cleanup(t.Context())
	sys := logical.TestSystemView()
	sys.SetPasswordPolicy("auth0", func() (string, error) { return strings.Repeat("Z", 48), nil })
	restartBackend(t, e, sys)
	e.configureStaged(map[string]interface{}{"password_policy": "auth0"})
	e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true})
	if got := e.appSecret(testAppID); got != strings.Repeat("Z", 48) {
		t.Fatal("the switched secret does not come from the password policy")
	}
}

// Any failure between storing the staged secret and committing the switch is resolved by
// setting the same secret again: a lost PATCH answer, storage failing after Auth0 took it,
// a crash. No read-back is needed (the Management API application here cannot read
// secrets), and Auth0 never holds a secret Vault does not.
func TestStagedSwitchFailuresSetTheSameSecretAgain(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"PATCH applied, answer lost", func(e *testEnv) {
			e.emu.SetFaults(patchFault(emulator.AfterApply, emulator.Fault{Drop: true}))
		}},
		{"PATCH failed before applying", func(e *testEnv) {
			e.emu.SetFaults(patchFault(emulator.BeforeApply, emulator.Fault{Status: http.StatusServiceUnavailable}))
		}},
		{"storage fails after Auth0 took it", func(e *testEnv) {
			e.storage.failPutsUnder(model.CredsStoragePrefix, 1<<30)
		}},
		{"crash after Auth0 took it", func(e *testEnv) {
			e.emu.SetFaults(patchFault(emulator.AfterApply, emulator.Fault{Do: func() { e.storage.failPutsUnder("", 1<<30) }}))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, "read:clients", "update:client_keys")
			e.emu.AddClient(emulator.Client{ClientID: "app-cc", Grants: map[string][]string{testAPI: {}}})
			e.configure()
			e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": "app-cc", "rotation_strategy": "staged", "stage_period": "10m", "rotation_period": "1h"})
			e.advance(50 * time.Minute)
			staged := e.ok(logical.ReadOperation, "roles/app", nil)["next_version"]
			tc.setup(e)
			e.advance(10 * time.Minute)
			e.emu.SetFaults(nil)
			e.storage.failPuts.Store(0)
			if tc.name == "crash after Auth0 took it" {
				e.b.Cleanup(t.Context())
				restartBackend(t, e, logical.TestSystemView())
			}
			role := e.ok(logical.ReadOperation, "roles/app", nil)
			if role["last_rotation_failure"] == nil && tc.name != "crash after Auth0 took it" {
				t.Fatal("the failed switch was not recorded")
			}
			e.advance(time.Hour)
			role = e.ok(logical.ReadOperation, "roles/app", nil)
			if role["current_version"] != staged || role["last_rotation_failure"] != nil {
				t.Fatalf("after the retry: %v", role)
			}
			creds := e.ok(logical.ReadOperation, "creds/app", nil)
			if creds["client_secret"] != e.appSecret("app-cc") {
				t.Fatal("creds do not serve the secret Auth0 holds")
			}
			v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
			if got := v["1"].(map[string]interface{})["verified"]; got != model.VerifiedToken {
				t.Fatalf("verified = %v, want %s (no read:client_keys; the application has the client-credentials grant)", got, model.VerifiedToken)
			}
			if st := e.emu.Stats(); st.Rotations["app-cc"] != 0 {
				t.Fatal("a staged role called rotate-secret")
			}
		})
	}
}

// patchFault injects fault into the first PATCH of an application's client_secret.
func patchFault(phase emulator.Phase, fault emulator.Fault) emulator.FaultFunc {
	fired := false
	return func(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
		if p == phase && r.Method == http.MethodPatch && clientID != testMgmtID && !fired {
			fired = true
			f := fault
			return &f
		}
		return nil
	}
}

// Staged roles under Auth0's propagation window: the switch is checked at /oauth/token
// until Auth0 accepts the new secret.
func TestStagedSwitchDuringPropagation(t *testing.T) {
	e := newTestEnv(t, "read:clients", "update:client_keys")
	e.configure()
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "rotation_strategy": "staged", "stage_period": "10m"})
	e.emu.SetPropagationDelay(30 * time.Second)
	e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true})
	v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if got := v["1"].(map[string]interface{})["verified"]; got != model.VerifiedToken {
		t.Fatalf("verified = %v", got)
	}
}

// Nothing staged or switched where storage is read-only.
func TestStagedNotOnStandby(t *testing.T) {
	e := newTestEnv(t)
	e.configureStaged(nil)
	e.b.Cleanup(t.Context())
	restartBackend(t, e, logical.StaticSystemView{ReplicationStateVal: consts.ReplicationPerformanceStandby})
	e.advance(2 * time.Hour)
	if st := e.emu.Stats(); st.SecretPatches[testAppID] != 0 {
		t.Fatal("a standby switched a staged secret")
	}
	if c := e.ok(logical.ReadOperation, "creds/app", nil); c["next_client_secret"] != "" {
		t.Fatal("a standby staged a secret")
	}
}

// switch_now on a secret published for later: the plugin dies after Auth0 took the PATCH.
// The switch is recorded as started before the PATCH goes out, so after the restart the
// role is due at once and the switch is finished, rather than waiting for the old switch
// time while Auth0 already holds the new secret; and it can no longer be cancelled.
// (Found by the staged crash test on a real Vault.)
func TestStagedSwitchNowSurvivesACrash(t *testing.T) {
	e := newTestEnv(t)
	e.configureStaged(map[string]interface{}{"rotation_period": 0, "stage_period": "1h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	staged := e.ok(logical.ReadOperation, "creds/app", nil)["next_client_secret"]
	e.emu.SetFaults(patchFault(emulator.AfterApply, emulator.Fault{Do: func() { e.storage.failPutsUnder("", 1<<30) }, Drop: true}))
	if _, err := e.request(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true}); err == nil {
		t.Fatal("switch_now succeeded although its answer was lost")
	}
	e.b.Cleanup(t.Context()) // the plugin dies
	e.emu.SetFaults(nil)
	e.storage.failPuts.Store(0)
	if e.appSecret(testAppID) != staged {
		t.Fatal("Auth0 did not take the staged secret")
	}
	restartBackend(t, e, logical.TestSystemView())
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/app", map[string]interface{}{"cancel_staged": true}), "can only be finished")
	e.advance(time.Second)
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != staged || creds["version"] != 2 || creds["next_client_secret"] != "" {
		t.Fatalf("a second after the restart: %v", redactCreds(creds))
	}
}
