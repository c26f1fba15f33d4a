package auth0

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/apidoc"
)

// docs/API.md is generated from the OpenAPI document, never written by hand.
func TestOpenAPIDocsCurrent(t *testing.T) {
	want, err := apidoc.Generate(context.Background(), Factory)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("docs/API.md")
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/API.md is stale: run make docs\n%s", apidoc.FirstDifference(got, want))
	}
}

// contract is the user contract (the project's API.md): each operation with the parameters
// and request fields it takes, and the response fields users rely on. The document may
// offer more, never less.
var contract = map[string]apidoc.Endpoint{
	"create/update auth0/config":      {Params: []string{"domain", "client_id", "client_secret", "audience", "verify_connection", "request_timeout", "rate_limit", "root_rotation_period", "metrics_role_labels", "drift_check_period"}},
	"read auth0/config":               {Response: []string{"domain", "client_id", "audience", "request_timeout", "rate_limit", "root_rotation_period", "last_root_rotation", "next_root_rotation"}},
	"delete auth0/config":             {},
	"update auth0/config/rotate-root": {Response: []string{"last_root_rotation"}},
	"create/update auth0/roles/:name": {Params: []string{"name", "client_id", "rotation_period", "rotation_schedule", "rotation_window", "max_versions", "import_current_secret",
		"rotation_strategy", "stage_period", "password_policy", "credential_type", "key_bits", "algorithm", "overlap_period", "allow_auth_method_change",
		"token_audiences", "token_scopes", "allow_assertions", "assertion_ttl", "drift_action"}},
	"read auth0/roles/:name":   {Params: []string{"name"}, Response: []string{"client_id", "current_version", "last_vault_rotation", "next_vault_rotation", "last_rotation_failure", "drift_action", "drift_detected"}},
	"delete auth0/roles/:name": {Params: []string{"name"}},
	"list auth0/roles/":        {Response: []string{"keys", "key_info"}},
	"update auth0/rotate/:name": {Params: []string{"name", "switch_now", "cancel_staged"},
		Response: []string{"version", "last_vault_rotation", "next_vault_rotation", "next_version", "next_switch_time"}},
	"read auth0/creds/:name": {Params: []string{"name", "version"}, Response: []string{
		"client_id", "client_secret", "domain", "version", "previous_client_secret", "last_vault_rotation", "rotation_period", "rotation_schedule", "ttl", "next_vault_rotation",
		"next_client_secret", "next_version", "next_switch_time",
		"private_key", "key_id", "kid", "algorithm", "previous_private_key", "previous_key_id", "previous_kid"}},
	"read auth0/versions/:name":  {Params: []string{"name"}, Response: []string{"current_version", "oldest_version", "versions"}},
	"read auth0/token/:name":     {Params: []string{"name", "audience"}, Response: []string{"access_token", "token_type", "expires_in", "expires_at", "scope", "audience", "ttl"}},
	"read auth0/assertion/:name": {Params: []string{"name"}, Response: []string{"client_assertion", "client_assertion_type", "expires_at"}},
	"read auth0/status":          {Response: []string{"roles_failing", "rotations_overdue", "rotations_in_flight", "management_api_pause", "last_auth0_success", "roles_drifted"}},
	"read auth0/metrics":         {},
	"read auth0/config/check":    {Params: []string{"roles"}, Response: []string{"ok", "scopes", "rate_limit", "clock_skew_seconds", "audience", "roles"}},
}

// Every path, operation, parameter and field of the document is described, and the
// document covers the whole contract.
func TestOpenAPICoverage(t *testing.T) {
	doc, err := apidoc.Spec(context.Background(), Factory)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range apidoc.Problems(doc, apidoc.Mount) {
		t.Error(p)
	}
	endpoints, err := apidoc.Endpoints(doc, apidoc.Mount)
	if err != nil {
		t.Fatal(err)
	}
	for op, want := range contract {
		got, ok := endpoints[op]
		if !ok {
			t.Errorf("%s: missing from the OpenAPI document", op)
			continue
		}
		for _, name := range want.Params {
			if !slices.Contains(got.Params, name) {
				t.Errorf("%s: parameter %s missing", op, name)
			}
		}
		for _, name := range want.Response {
			if !slices.Contains(got.Response, name) {
				t.Errorf("%s: response field %s missing", op, name)
			}
		}
	}
	for op := range endpoints {
		if _, ok := contract[op]; !ok {
			t.Errorf("%s: not in the contract; add it to the project's API.md and to contract here", op)
		}
	}
}

// What the handlers answer is what the document declares: every response field a handler
// returns is declared, with its type (strict validation), across the roles' variants.
func TestOpenAPIResponses(t *testing.T) {
	// declared and seen fields per operation, to find declarations no answer ever carries
	declared := map[string]map[string]bool{}
	seen := map[string]map[string]bool{}
	check := func(e *testEnv, op logical.Operation, path string, data map[string]interface{}) {
		t.Helper()
		resp, err := e.request(op, path, data)
		if err != nil || resp == nil || resp.IsError() {
			t.Fatalf("%s %s: %v %v", op, path, resp, err)
		}
		route := e.b.Route(path)
		if route == nil {
			t.Fatalf("no route for %s", path)
		}
		want := schema.GetResponseSchema(t, route, op)
		schema.ValidateResponse(t, want, resp, true)
		key := string(op) + " " + route.Pattern
		if declared[key] == nil {
			declared[key], seen[key] = map[string]bool{}, map[string]bool{}
		}
		for name := range want.Fields {
			declared[key][name] = true
		}
		for name := range resp.Data {
			seen[key][name] = true
		}
	}
	reads := func(e *testEnv, paths ...string) {
		t.Helper()
		for _, p := range paths {
			check(e, logical.ReadOperation, p, nil)
		}
	}

	t.Run("immediate", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "720h"})
		check(e, logical.UpdateOperation, "rotate/app", nil)
		check(e, logical.UpdateOperation, "rotate/app", nil)
		check(e, logical.UpdateOperation, "config/rotate-root", nil)
		check(e, logical.ListOperation, "roles/", nil)
		check(e, logical.ReadOperation, "creds/app", map[string]interface{}{"version": 1})
		reads(e, "config", "roles/app", "creds/app", "versions/app", "status", "config/check")
		e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": 0, "rotation_schedule": "0 3 * * SUN", "rotation_window": "1h"})
		reads(e, "roles/app", "creds/app")
	})
	t.Run("staged", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureStaged(nil)
		check(e, logical.UpdateOperation, "rotate/app", nil) // stages
		reads(e, "roles/app", "creds/app", "versions/app")
		check(e, logical.UpdateOperation, "rotate/app", map[string]interface{}{"cancel_staged": true})
		reads(e, "versions/app")
	})
	t.Run("private_key_jwt", func(t *testing.T) {
		e := newKeyEnv(t, map[string]interface{}{"allow_assertions": true, "overlap_period": "1h"})
		check(e, logical.UpdateOperation, "rotate/app", nil)
		check(e, logical.UpdateOperation, "rotate/app", map[string]interface{}{"end_overlap": true})
		reads(e, "roles/app", "creds/app", "versions/app", "assertion/app", "status")
		// A new key waits for propagation_wait before creds serve it.
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": "30s"})
		check(e, logical.UpdateOperation, "rotate/app", map[string]interface{}{"end_overlap": true})
		reads(e, "roles/app", "status")
	})
	t.Run("self_signed_tls_client_auth", func(t *testing.T) {
		e := newCertEnv(t, map[string]interface{}{"overlap_period": "1h"})
		check(e, logical.UpdateOperation, "rotate/app", nil)
		check(e, logical.UpdateOperation, "rotate/app", map[string]interface{}{"end_overlap": true})
		reads(e, "roles/app", "creds/app", "versions/app", "status")
	})
	t.Run("config private_key_jwt", func(t *testing.T) {
		e, _ := newRootKeyEnv(t, map[string]interface{}{"root_overlap_period": "1h"})
		check(e, logical.UpdateOperation, "config/rotate-root", nil)
		reads(e, "config")
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": "30s"})
		check(e, logical.UpdateOperation, "config/rotate-root", map[string]interface{}{"end_overlap": true})
		reads(e, "config")
	})
	t.Run("drift", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureWithRole(nil)
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"drift_check_period": "1h"})
		e.ok(logical.UpdateOperation, "rotate/app", nil)
		if _, err := e.emu.RotateSecretOutside(testAppID); err != nil {
			t.Fatal(err)
		}
		e.advance(time.Hour)
		reads(e, "roles/app", "status")
	})
	t.Run("token", func(t *testing.T) {
		e := newTokenEnv(t, nil)
		reads(e, "token/app", "roles/app")
	})

	// Fields only a failure, a pause or a lost answer produces; the others must show up.
	rare := []string{"last_rotation_failure", "last_root_rotation_failure", "roles_unreadable", "management_api_paused_until",
		"token_endpoint_paused_until", "warning", "rotation_blocked"}
	for key, fields := range declared {
		for name := range fields {
			if !seen[key][name] && !slices.Contains(rare, name) {
				t.Errorf("%s: declares %s, which no answer carried", key, name)
			}
		}
	}
}
