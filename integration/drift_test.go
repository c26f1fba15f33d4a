package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// driftPeriod is the shortest drift_check_period the engine takes; the test waits for
// real checks on Vault's own clock.
const driftPeriod = time.Minute

// driftSlack bounds the time from a check's moment to its answer being stored: one
// Management API call at the mount's pace, on a busy machine. It is not a performance
// figure; the engine's promise is the period.
const driftSlack = 10 * time.Second

// Someone rotates secrets in the Auth0 Dashboard and attaches a key of their own behind
// Vault's back. On a real Vault with drift_check_period=1m the engine finds each change
// within one period: shown on the role, in auth0/status and in auth0/metrics, and a role
// with drift_action=rotate takes its secret back within the same period, after which
// its application logs in with what creds serve.
func TestDriftFoundAndHealedWithinAPeriod(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t) // its Management application may read secrets and credentials
	v, root := f.v, f.v.RootToken
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=20")

	reported := f.addApp(t, "drift-report-id", "Drift Report")
	f.createRole(t, "reported", reported.ClientID)
	healed := f.addApp(t, "drift-heal-id", "Drift Heal")
	v.MustCLI(t, root, "write", mount+"/roles/healed", "client_id="+healed.ClientID, "drift_action=rotate")
	keyApp := f.addApp(t, "drift-key-id", "Drift Key")
	v.MustCLI(t, root, "write", mount+"/roles/keyed", "client_id="+keyApp.ClientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true")
	for _, role := range []string{"reported", "healed", "keyed"} {
		f.rotate(t, root, role)
	}
	v.MustCLI(t, root, "write", mount+"/config", "drift_check_period="+driftPeriod.String())

	served := func(role string) string {
		return str(t, dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/"+role)), "client_secret")
	}
	before := map[string]string{"reported": served("reported"), "healed": served("healed")}

	// The changes behind Vault's back.
	changed := time.Now()
	for _, app := range []string{reported.ClientID, healed.ClientID} {
		if _, err := f.emu.RotateSecretOutside(app); err != nil {
			t.Fatal(err)
		}
	}
	if authenticate(t, f.emuURL, reported.ClientID, before["reported"]) != 401 {
		t.Fatal("the served secret still logs in after the rotation outside Vault: nothing drifted")
	}
	_, public, err := auth0api.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := f.emu.AddCredential(keyApp.ClientID, emulator.CredentialSpec{Name: "attached by hand", PEM: public})
	if err != nil {
		t.Fatal(err)
	}
	current := str(t, dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/keyed")), "key_id")
	if err := f.emu.AttachCredentials(keyApp.ClientID, current, foreign.ID); err != nil {
		t.Fatal(err)
	}

	type want struct {
		role, what string
	}
	wants := []want{
		{"reported", "Auth0 holds another secret than version 1"},
		{"keyed", "credentials Vault did not register are attached: " + foreign.ID},
	}
	found := map[string]time.Time{}
	healedAt := time.Time{}
	deadline := changed.Add(2*driftPeriod + driftSlack)
	for time.Now().Before(deadline) && (len(found) < len(wants) || healedAt.IsZero()) {
		for _, w := range wants {
			if _, ok := found[w.role]; ok {
				continue
			}
			d := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/"+w.role))
			drift, _ := d["drift_detected"].(map[string]any)
			if drift == nil {
				continue
			}
			if what, _ := drift["what"].(string); !strings.Contains(what, w.what) {
				t.Fatalf("role %s: drift_detected %v, want what containing %q", w.role, drift, w.what)
			}
			found[w.role] = rfc3339(t, drift, "time")
		}
		if healedAt.IsZero() {
			d := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/healed"))
			if num(t, d, "current_version") == 2 && d["drift_detected"] == nil {
				healedAt = rfc3339(t, d, "last_vault_rotation")
			}
		}
		time.Sleep(500 * time.Millisecond) // polling a real server on its real clock
	}
	for _, w := range wants {
		at, ok := found[w.role]
		if !ok {
			t.Fatalf("role %s: no drift recorded %s after the change (drift_check_period %s)", w.role, time.Since(changed).Round(time.Second), driftPeriod)
		}
		if late := at.Sub(changed); late > driftPeriod+driftSlack {
			t.Errorf("role %s: drift recorded %s after the change, more than one period (%s)", w.role, late.Round(time.Millisecond), driftPeriod)
		}
	}
	t.Logf("drift recorded after the change: reported %s, keyed %s; healed rotated after %s (period %s)",
		found["reported"].Sub(changed).Round(time.Millisecond), found["keyed"].Sub(changed).Round(time.Millisecond),
		healedAt.Sub(changed).Round(time.Second), driftPeriod)
	if healedAt.IsZero() {
		t.Fatalf("role healed (drift_action=rotate) not rotated %s after the change", time.Since(changed).Round(time.Second))
	}
	if late := healedAt.Sub(changed); late > driftPeriod+driftSlack {
		t.Errorf("role healed rotated %s after the change, more than one period (%s)", late.Round(time.Millisecond), driftPeriod)
	}
	if s := served("healed"); s == before["healed"] || authenticate(t, f.emuURL, healed.ClientID, s) != 200 {
		t.Fatal("after taking the secret back, creds do not serve a secret Auth0 accepts")
	}
	// report leaves the role as it is: still drifted, counted, and served as before.
	if served("reported") != before["reported"] {
		t.Fatal("drift_action=report changed the secret creds serve")
	}
	status := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/status"))
	drifted, _ := status["roles_drifted"].([]any)
	var names []string
	for _, d := range drifted {
		names = append(names, str(t, d.(map[string]any), "role"))
	}
	if strings.Join(names, ",") != "keyed,reported" {
		t.Fatalf("status roles_drifted %v, want keyed and reported", status["roles_drifted"])
	}
	families, raw := scrapeMetrics(t, v.Addr, scrapeJobFor(mount), root)
	if mf := families["vault_auth0_roles_drifted"]; mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 2 {
		t.Fatalf("vault_auth0_roles_drifted is not 2:\n%s", raw)
	}
	// The operator takes the reported secret back: the record clears.
	f.rotate(t, root, "reported")
	if d := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/reported")); d["drift_detected"] != nil {
		t.Fatalf("drift_detected after the operator's rotation: %v", d["drift_detected"])
	}
	if s := served("reported"); authenticate(t, f.emuURL, reported.ClientID, s) != 200 {
		t.Fatal("after the operator's rotation, creds do not serve a secret Auth0 accepts")
	}
}

// scrapeJobFor is how Prometheus scrapes the metrics of the mount at path with a token.
func scrapeJobFor(path string) scrapeJob {
	var job scrapeJob
	job.MetricsPath = "/v1/" + path + "/metrics"
	job.Authorization.Type = "Bearer"
	return job
}
