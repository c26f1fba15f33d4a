package auth0

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/metrics"
)

// scrape reads auth0/metrics as Prometheus would and parses it.
func (e *testEnv) scrape() (map[string]*dto.MetricFamily, string) {
	e.t.Helper()
	resp, err := e.request(logical.ReadOperation, "metrics", nil)
	if err != nil || resp == nil {
		e.t.Fatalf("reading metrics: %v", err)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != metrics.ContentType || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
		e.t.Fatalf("metrics answered content type %v, status %v", ct, resp.Data[logical.HTTPStatusCode])
	}
	body, _ := resp.Data[logical.HTTPRawBody].([]byte)
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("metrics do not parse as Prometheus text: %v\n%s", err, body)
	}
	return families, string(body)
}

// metricValue is the value of the series of family name whose labels include want; -1
// when there is none.
func metricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := families[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// auth0/metrics counts what the engine did, in Prometheus' text format: rotations by kind,
// trigger and outcome, the requests to Auth0 by endpoint and status, creds and token/
// reads, the token cache, the roles' health; per-role series only when the operator allows
// role names, and never a secret.
func TestMetricsCountWhatTheEngineDid(t *testing.T) {
	e := newTokenEnv(t, nil) // role "app", rotated once by hand
	e.ok(logical.UpdateOperation, "roles/other", map[string]interface{}{"client_id": testApp2ID})
	for i := 0; i < 5; i++ {
		e.ok(logical.ReadOperation, "creds/app", nil)
	}
	for i := 0; i < 3; i++ {
		e.ok(logical.ReadOperation, "token/app", nil)
	}
	// A failed rotation: Auth0 answers 503 before applying.
	e.emu.SetFaults(rotateFault(emulator.BeforeApply, emulator.Fault{Status: http.StatusServiceUnavailable}))
	if _, err := e.request(logical.UpdateOperation, "rotate/other", nil); err == nil {
		t.Fatal("a rotation whose rotate-secret got a 503 succeeded")
	}
	e.emu.SetFaults(nil)

	m, text := e.scrape()
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vault_auth0_rotations_total", map[string]string{"kind": "client_secret", "trigger": "rotate", "outcome": "rotated"}, 1},
		{"vault_auth0_rotations_total", map[string]string{"kind": "client_secret", "trigger": "rotate", "outcome": "failed"}, 1},
		{"vault_auth0_rotation_duration_seconds", map[string]string{"kind": "client_secret"}, 1},
		{"vault_auth0_creds_reads_total", nil, 5},
		{"vault_auth0_token_reads_total", nil, 3},
		{"vault_auth0_token_cache_misses_total", nil, 1},
		{"vault_auth0_token_cache_hits_total", nil, 2},
		{"vault_auth0_token_requests_total", nil, 1},
		{"vault_auth0_api_requests_total", map[string]string{"endpoint": "POST /api/v2/clients/{id}/rotate-secret", "status": "2xx"}, 1},
		{"vault_auth0_api_requests_total", map[string]string{"endpoint": "POST /api/v2/clients/{id}/rotate-secret", "status": "5xx"}, 1},
		{"vault_auth0_roles", nil, 2},
		{"vault_auth0_roles_failing", nil, 1},
		{"vault_auth0_roles_blocked", nil, 0},
	}
	for _, c := range checks {
		if got := metricValue(m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := metricValue(m, "vault_auth0_api_requests_total", map[string]string{"endpoint": "POST /oauth/token", "status": "2xx"}); got < 2 {
		t.Errorf("token endpoint requests counted %v, want the Management API's and the role's", got)
	}
	if last := metricValue(m, "vault_auth0_last_success_timestamp_seconds", nil); last != float64(e.clock.Now().UnixNano())/1e9 {
		t.Errorf("last success %v, want the last call's time %v", last, e.clock.Now())
	}
	if strings.Contains(text, `role="app"`) || metricValue(m, "vault_auth0_role_creds_reads_total", nil) != -1 {
		t.Error("role names appear in the metrics without metrics_role_labels")
	}
	for _, secret := range []string{e.appSecret(testAppID), e.mgmtSecret()} {
		if strings.Contains(text, secret) {
			t.Fatal("a secret appears in the metrics")
		}
	}

	// With role labels, the per-role series; a role delete drops them; turning labels
	// off drops them all.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"metrics_role_labels": true})
	if read := e.ok(logical.ReadOperation, "config", nil); read["metrics_role_labels"] != true {
		t.Fatalf("config read %v", read)
	}
	e.ok(logical.ReadOperation, "creds/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/other", nil)
	m, _ = e.scrape()
	if got := metricValue(m, "vault_auth0_role_creds_reads_total", map[string]string{"role": "app"}); got != 1 {
		t.Errorf("role_creds_reads_total{role=app} = %v, want 1", got)
	}
	if got := metricValue(m, "vault_auth0_role_rotations_total", map[string]string{"role": "other", "outcome": "rotated"}); got != 1 {
		t.Errorf("role_rotations_total{role=other,outcome=rotated} = %v, want 1", got)
	}
	if got := metricValue(m, "vault_auth0_roles_failing", nil); got != 0 {
		t.Errorf("roles_failing %v after the failing role rotated", got)
	}
	e.ok(logical.DeleteOperation, "roles/other", nil)
	m, text = e.scrape()
	if strings.Contains(text, `role="other"`) || metricValue(m, "vault_auth0_roles", nil) != 1 {
		t.Errorf("a deleted role's series remain, or it is still counted:\n%s", text)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"metrics_role_labels": false})
	if _, text = e.scrape(); strings.Contains(text, `role="`) {
		t.Error("per-role series remain after metrics_role_labels=false")
	}
}

// A 429 from the Management API counts, and so does the time the mount's calls then wait.
func TestMetricsCountRateLimits(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	// The 429 pauses the mount's calls; the rotation waits it out and succeeds.
	e.emu.SetFaults(rotateFault(emulator.BeforeApply, emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 7}))
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.emu.SetFaults(nil)
	m, _ := e.scrape()
	if got := metricValue(m, "vault_auth0_api_rate_limited_total", nil); got != 1 {
		t.Errorf("rate_limited_total %v, want 1", got)
	}
	if got := metricValue(m, "vault_auth0_api_requests_total", map[string]string{"endpoint": "POST /api/v2/clients/{id}/rotate-secret", "status": "429"}); got != 1 {
		t.Errorf("429s of rotate-secret counted %v, want 1", got)
	}
	if got := metricValue(m, "vault_auth0_api_paused_seconds_total", nil); got <= 0 || got > 7 {
		t.Errorf("paused %vs, want the Retry-After's 7s less what the clock moved since", got)
	}
}
