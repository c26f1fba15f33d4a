package integration

// Tests of docs/recipes: each runs the snippets of a recipe, taken from the Markdown, so
// that the documentation cannot drift from what works. The Auth0 Terraform recipe's
// scopes are checked by TestRecipeAuth0Scopes in the root package.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

const (
	policiesRecipe  = "docs/recipes/policies.md"
	agentRecipe     = "docs/recipes/vault-agent.md"
	k8sRecipe       = "docs/recipes/kubernetes.md"
	tfVaultRecipe   = "docs/recipes/terraform-vault.md"
	recipePolicyApp = "myapp-app" // the name kubernetes.md and vault-agent.md use for policy-app
	// recipePolicyAppKeys is policy-app-keys's name: the consumer recipes (vso.md, csi.md,
	// eso.md) use it for their private_key_jwt role, myapp-keys.
	recipePolicyAppKeys = "myapp-keys-app"
)

// recipePolicies maps the policy blocks of policies.md to the names the recipes load them as.
var recipePolicies = map[string]string{
	"policy-app":       recipePolicyApp,
	"policy-app-keys":  recipePolicyAppKeys,
	"policy-app-token": "myapp-token",
	"policy-rotator":   "myapp-rotator",
	"policy-operator":  "auth0-operator",
	"policy-monitor":   "auth0-monitor",
}

// TestRecipes runs the policies, Kubernetes and Vault Agent recipes on one Vault: role
// myapp (rotated twice, so it has a previous version), role other, and the
// private_key_jwt role myapp-keys (rotated once).
func TestRecipes(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t) // its Management API application may manage keys too
	myapp := f.addApp(t, "myapp-id", "My App")
	other := f.addApp(t, "other-id", "Other App")
	keyApp := f.addApp(t, "myapp-keys-id", "My App With Keys")
	f.addApp(t, "ops-id", "Ops App")
	f.mustRequest(t, http.MethodPost, mount+"/roles/myapp", map[string]any{"client_id": myapp.ClientID, "token_audiences": apiAudience})
	f.mustRequest(t, http.MethodPost, mount+"/roles/other", map[string]any{"client_id": other.ClientID, "token_audiences": apiAudience})
	f.mustRequest(t, http.MethodPost, mount+"/roles/myapp-keys", map[string]any{"client_id": keyApp.ClientID, "credential_type": "private_key_jwt", "allow_auth_method_change": true})
	for _, r := range []string{"myapp", "myapp", "other", "myapp-keys"} {
		f.mustRequest(t, http.MethodPost, mount+"/rotate/"+r, nil)
	}
	blocks := vaulttest.RecipeBlocks(t, policiesRecipe)
	for block, name := range recipePolicies {
		hcl, ok := blocks[block]
		if !ok {
			t.Fatalf("%s has no block %s", policiesRecipe, block)
		}
		f.v.WritePolicy(t, name, hcl)
	}

	t.Run("policies", func(t *testing.T) { recipePoliciesCheck(t, f) })
	t.Run("kubernetes", func(t *testing.T) { recipeKubernetesCheck(t, f) })
	t.Run("agent", func(t *testing.T) { recipeAgentCheck(t, f) })
}

// mustRequest sends a request as root and fails unless it succeeds.
func (f *fixture) mustRequest(t *testing.T, method, path string, body map[string]any) map[string]any {
	t.Helper()
	return mustWrite(t, f.v, method, path, body)
}

// recipePoliciesCheck: every claim of policies.md, each capability shown granted to the
// policy the recipe gives it and refused to the others.
func recipePoliciesCheck(t *testing.T, f *fixture) {
	v := f.v
	// "root" shows that a refused path exists and answers: the refusal is the policy's.
	tokens := map[string]string{"root": v.RootToken}
	for _, name := range recipePolicies {
		tokens[name] = v.CreateToken(t, name)
	}
	secretOf := func(t *testing.T, clientID string) string { return f.secret(t, clientID) }
	const (
		app, appKeys, appToken, rotator, operator, monitor = recipePolicyApp, recipePolicyAppKeys, "myapp-token", "myapp-rotator", "auth0-operator", "auth0-monitor"
		get, put, del, list                                = http.MethodGet, http.MethodPost, http.MethodDelete, "LIST"
	)
	noSecretField := func(t *testing.T, data map[string]any) {
		for k := range data {
			if strings.Contains(k, "secret") {
				t.Errorf("the answer has a field %q", k)
			}
		}
	}
	type claim struct {
		policy, method, path string
		body                 map[string]any
		allowed              bool
		// rotates is the client whose Auth0 rotations must grow by one (allowed) or stay.
		rotates string
		check   func(t *testing.T, data map[string]any)
	}
	claims := []claim{
		// application
		{policy: app, method: get, path: "creds/myapp", allowed: true, check: func(t *testing.T, d map[string]any) {
			if s := str(t, d, "client_secret"); s != secretOf(t, "myapp-id") || authenticate(t, f.emuURL, "myapp-id", s) != http.StatusOK {
				t.Error("creds/myapp do not serve the secret Auth0 accepts")
			}
		}},
		{policy: app, method: get, path: "creds/myapp?version=1", allowed: true, check: func(t *testing.T, d map[string]any) {
			if num(t, d, "version") != 1 {
				t.Errorf("version = %v, want 1", d["version"])
			}
		}},
		{policy: app, method: get, path: "creds/other"},
		{policy: app, method: put, path: "rotate/myapp", rotates: "myapp-id"},
		{policy: app, method: get, path: "roles/myapp"},
		{policy: app, method: get, path: "versions/myapp"},
		{policy: app, method: get, path: "token/myapp"},
		{policy: app, method: get, path: "config"},
		{policy: app, method: list, path: "roles"},
		{policy: app, method: get, path: "status"},
		{policy: "root", method: get, path: "creds/other", allowed: true},
		{policy: app, method: get, path: "creds/myapp-keys"},
		// application of the private_key_jwt role
		{policy: appKeys, method: get, path: "creds/myapp-keys", allowed: true, check: func(t *testing.T, d map[string]any) {
			if str(t, d, "private_key") == "" || str(t, d, "kid") == "" || str(t, d, "key_id") == "" {
				t.Errorf("creds/myapp-keys answered no key: %v", keys(d))
			}
		}},
		{policy: appKeys, method: get, path: "creds/myapp"},
		// application minting tokens
		{policy: appToken, method: get, path: "token/myapp", allowed: true, check: func(t *testing.T, d map[string]any) {
			if str(t, d, "access_token") == "" || str(t, d, "audience") != apiAudience {
				t.Errorf("token/myapp answered %v", keys(d))
			}
		}},
		{policy: appToken, method: get, path: "creds/myapp"},
		{policy: appToken, method: get, path: "token/other"},
		{policy: "root", method: get, path: "token/other", allowed: true},
		// rotator
		{policy: rotator, method: put, path: "rotate/myapp", allowed: true, rotates: "myapp-id", check: func(t *testing.T, d map[string]any) {
			noSecretField(t, d)
			if num(t, d, "version") < 3 {
				t.Errorf("rotate answered version %v", d["version"])
			}
		}},
		{policy: rotator, method: get, path: "versions/myapp", allowed: true, check: noSecretField},
		{policy: rotator, method: get, path: "creds/myapp"},
		{policy: rotator, method: get, path: "creds/myapp?version=1"},
		{policy: rotator, method: put, path: "rotate/other", rotates: "other-id"},
		{policy: rotator, method: put, path: "roles/myapp", body: map[string]any{"max_versions": 5}},
		{policy: rotator, method: get, path: "config"},
		{policy: rotator, method: put, path: "config", body: map[string]any{"rate_limit": 1}},
		{policy: rotator, method: put, path: "config/rotate-root"},
		{policy: rotator, method: put, path: "roles/ops", body: map[string]any{"client_id": "ops-id"}},
		// operator
		{policy: operator, method: put, path: "config", body: map[string]any{"rate_limit": 5}, allowed: true},
		{policy: operator, method: get, path: "config", allowed: true, check: func(t *testing.T, d map[string]any) {
			if _, ok := d["client_secret"]; ok || d["client_id"] != mgmtClientID {
				t.Errorf("config read: client_id %v, fields %v; want the client_id and no client_secret", d["client_id"], keys(d))
			}
		}},
		{policy: operator, method: put, path: "config/rotate-root", allowed: true, check: noSecretField},
		{policy: operator, method: put, path: "roles/ops", body: map[string]any{"client_id": "ops-id"}, allowed: true},
		{policy: operator, method: list, path: "roles", allowed: true, check: func(t *testing.T, d map[string]any) {
			if ks, _ := d["keys"].([]any); !slices.Contains(ks, any("ops")) || !slices.Contains(ks, any("myapp")) {
				t.Errorf("list answered %v", d["keys"])
			}
		}},
		{policy: operator, method: get, path: "roles/ops", allowed: true},
		{policy: monitor, method: get, path: "roles/ops"},
		{policy: app, method: del, path: "roles/ops"},
		{policy: operator, method: del, path: "roles/ops", allowed: true},
		{policy: operator, method: get, path: "roles/myapp", allowed: true, check: noSecretField},
		{policy: operator, method: put, path: "roles/myapp", body: map[string]any{"max_versions": 10}, allowed: true},
		{policy: operator, method: put, path: "rotate/other", allowed: true, rotates: "other-id", check: noSecretField},
		{policy: operator, method: get, path: "versions/myapp", allowed: true},
		{policy: operator, method: get, path: "status", allowed: true},
		{policy: operator, method: get, path: "creds/myapp"},
		{policy: operator, method: get, path: "creds/myapp?version=1"},
		{policy: operator, method: get, path: "creds/other"},
		{policy: operator, method: get, path: "token/myapp"},
		// No role here signs assertions, so nothing can show this one allowed.
		{policy: operator, method: get, path: "assertion/myapp"},
		// monitor
		{policy: monitor, method: list, path: "roles", allowed: true, check: func(t *testing.T, d map[string]any) {
			if ks, _ := d["keys"].([]any); !slices.Contains(ks, any("myapp")) {
				t.Errorf("list answered %v", d["keys"])
			}
		}},
		{policy: monitor, method: get, path: "status", allowed: true},
		{policy: monitor, method: get, path: "roles/myapp"},
		{policy: monitor, method: get, path: "creds/myapp"},
		// the preflight check
		{policy: operator, method: get, path: "config/check", allowed: true, check: func(t *testing.T, d map[string]any) {
			noSecretField(t, d)
			if _, ok := d["ok"].(bool); !ok || d["scopes"] == nil || d["roles"] == nil {
				t.Errorf("config/check answered %v", keys(d))
			}
		}},
		{policy: monitor, method: get, path: "config/check"},
	}
	// Every claim is shown both ways: what a policy is refused, another policy (or root,
	// for what no recipe policy grants) is allowed, and the other way round.
	for _, c := range claims {
		shown := c.path == "assertion/myapp"
		for _, d := range claims {
			shown = shown || d.method == c.method && d.path == c.path && d.allowed != c.allowed
		}
		if !shown {
			t.Errorf("%s %s: %s is not shown the other way for another policy", c.method, c.path, c.policy)
		}
	}
	for _, c := range claims {
		verb := "cannot"
		if c.allowed {
			verb = "can"
		}
		t.Run(fmt.Sprintf("%s %s %s %s", c.policy, verb, c.method, c.path), func(t *testing.T) {
			before := 0
			if c.rotates != "" {
				before = f.rotations(c.rotates)
			}
			status, data, errs := v.Request(t, tokens[c.policy], c.method, mount+"/"+c.path, c.body)
			switch {
			case c.allowed && status != http.StatusOK && status != http.StatusNoContent:
				t.Fatalf("status %d, want it allowed: %v", status, errs)
			case !c.allowed && (status != http.StatusForbidden || !strings.Contains(strings.Join(errs, " "), "permission denied")):
				t.Fatalf("status %d (%v), want 403 permission denied", status, errs)
			case !c.allowed && data != nil:
				t.Fatalf("a refusal carries data %v", keys(data))
			}
			if c.check != nil {
				c.check(t, data)
			}
			if c.rotates != "" {
				want := before
				if c.allowed {
					want++
				}
				if got := f.rotations(c.rotates); got != want {
					t.Errorf("Auth0 saw %d rotations of %s, want %d", got-before, c.rotates, want-before)
				}
			}
		})
	}
	t.Run("operator config write cannot send the stored secret elsewhere", func(t *testing.T) {
		recipeConfigRedirectRefused(t, f, tokens[operator])
	})
}

// recipeConfigRedirectRefused checks policies.md's note on config writes: an operator who
// changes domain without client_secret is refused before Vault contacts anything, so the
// stored Management API secret never reaches the other host.
func recipeConfigRedirectRefused(t *testing.T, f *fixture, operatorToken string) {
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"error":"access_denied"}`, http.StatusUnauthorized)
	}))
	defer evil.Close()
	status, _, errs := f.v.Request(t, operatorToken, http.MethodPost, mount+"/config", map[string]any{"domain": evil.URL})
	if status != http.StatusBadRequest || !strings.Contains(strings.Join(errs, " "), "requires client_secret in the same write") {
		t.Fatalf("pointing config at another host without client_secret: status %d %v, want it refused", status, errs)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the other host received %d requests: the stored secret left for it", n)
	}
	if cfg := f.mustRequest(t, http.MethodGet, mount+"/config", nil); cfg["domain"] == evil.URL {
		t.Fatal("the refused write was stored")
	}
}

// recipeKubernetesCheck: kubernetes.md's Vault role and pod annotations.
func recipeKubernetesCheck(t *testing.T, f *fixture) {
	v := f.v
	// The Vault side: the recipe's commands, on a Kubernetes auth mount (not configured
	// for a cluster: no login happens here).
	f.mustRequest(t, http.MethodPost, "sys/auth/kubernetes", map[string]any{"type": "kubernetes"})
	var k8sRole string
	for _, args := range shellCommands(t, vaulttest.Recipe(t, k8sRecipe, "k8s-vault-role")) {
		if len(args) < 3 || args[0] != "vault" || args[1] != "write" {
			t.Fatalf("unexpected command %q", args)
		}
		v.MustCLI(t, v.RootToken, args[1:]...)
		if r, ok := strings.CutPrefix(args[2], "auth/kubernetes/role/"); ok {
			k8sRole = r
		}
	}
	if k8sRole == "" {
		t.Fatal("the recipe writes no auth/kubernetes/role/")
	}
	role := f.mustRequest(t, http.MethodGet, "auth/kubernetes/role/"+k8sRole, nil)
	policies := stringsOf(role["token_policies"])
	if !slices.Contains(policies, recipePolicyApp) {
		t.Fatalf("the Kubernetes auth role grants %v, not the application policy %s", policies, recipePolicyApp)
	}

	// The manifest.
	var doc struct {
		Metadata struct{ Namespace string }
		Spec     struct {
			Template struct {
				Metadata struct{ Annotations map[string]string }
				Spec     struct {
					ServiceAccountName string `yaml:"serviceAccountName"`
					Containers         []struct{ Command []string }
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(vaulttest.Recipe(t, k8sRecipe, "k8s-deployment")), &doc); err != nil {
		t.Fatalf("the manifest is not YAML: %v", err)
	}
	ann := doc.Spec.Template.Metadata.Annotations
	pod := doc.Spec.Template.Spec
	if !slices.Contains(stringsOf(role["bound_service_account_names"]), pod.ServiceAccountName) ||
		!slices.Contains(stringsOf(role["bound_service_account_namespaces"]), doc.Metadata.Namespace) {
		t.Errorf("the Kubernetes auth role is bound to %v in %v; the pod runs as %q in %q", role["bound_service_account_names"], role["bound_service_account_namespaces"], pod.ServiceAccountName, doc.Metadata.Namespace)
	}
	if ann["vault.hashicorp.com/role"] != k8sRole {
		t.Errorf("annotation role = %q, want the Kubernetes auth role %q", ann["vault.hashicorp.com/role"], k8sRole)
	}
	if b, err := strconv.ParseBool(ann["vault.hashicorp.com/agent-inject"]); err != nil || !b {
		t.Errorf("agent-inject = %q, want true", ann["vault.hashicorp.com/agent-inject"])
	}
	if iv, ok := ann["vault.hashicorp.com/template-static-secret-render-interval"]; ok {
		if _, err := time.ParseDuration(iv); err != nil {
			t.Errorf("template-static-secret-render-interval %q: %v", iv, err)
		}
	}
	secrets, templates := checkInjectorAnnotations(t, ann)
	if len(templates) == 0 {
		t.Fatal("no agent-inject-template- annotation")
	}
	token := v.CreateToken(t, policies...)
	for name, tmpl := range templates {
		path, ok := secrets[name]
		if !ok {
			t.Fatalf("template %q has no agent-inject-secret-%s", name, name)
		}
		if !strings.Contains(tmpl, fmt.Sprintf("secret %q", path)) {
			t.Errorf("template %q does not read the path of its secret annotation, %s", name, path)
		}
		if status, _, errs := v.Request(t, token, http.MethodGet, path, nil); status != http.StatusOK {
			t.Fatalf("%s, read with the role's policies: status %d: %v", path, status, errs)
		}
		agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{Token: token, Template: tmpl})
		rendered := vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return s != "" }, 30*time.Second)
		env := parseEnv(t, rendered)
		checkRenderedCreds(t, f, env["AUTH0_DOMAIN"], env["AUTH0_CLIENT_ID"], env["AUTH0_CLIENT_SECRET"], env["AUTH0_PREVIOUS_CLIENT_SECRET"])

		// The container's command sources the file: run it with the application replaced
		// by env, on the rendered file.
		if len(pod.Containers) == 0 || len(pod.Containers[0].Command) != 3 {
			t.Fatalf("the container has no sh -c command: %+v", pod.Containers)
		}
		cmd := pod.Containers[0].Command
		script := strings.Replace(cmd[2], "/vault/secrets/"+name, agent.RenderedPath, 1)
		script = strings.Replace(script, "exec /app/myapp", "exec printenv AUTH0_CLIENT_SECRET", 1)
		if script == cmd[2] || !strings.HasSuffix(script, "exec printenv AUTH0_CLIENT_SECRET") {
			t.Fatalf("the container command %q does not source /vault/secrets/%s and exec the application", cmd[2], name)
		}
		out, err := exec.Command(cmd[0], cmd[1], script).Output()
		if err != nil {
			t.Fatalf("sourcing the rendered file as the container does: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != env["AUTH0_CLIENT_SECRET"] {
			t.Errorf("the container's environment holds AUTH0_CLIENT_SECRET %q after sourcing, want the rendered one", got)
		}
	}
}

// injectorPrefixed are the injector annotations whose name ends with a secret's name.
var injectorPrefixed = []string{"agent-inject-secret-", "agent-inject-template-", "agent-inject-command-", "agent-inject-file-", "agent-inject-perms-", "secret-volume-path-", "preserve-secret-case-"}

// injectorKeys are the other injector annotations (vault-k8s agent-inject/agent/annotations.go).
var injectorKeys = []string{"agent-inject", "agent-inject-status", "agent-configmap", "agent-image", "agent-init-first",
	"agent-pre-populate", "agent-pre-populate-only", "agent-inject-token", "agent-cache-enable", "agent-limits-cpu",
	"agent-limits-mem", "agent-requests-cpu", "agent-requests-mem", "agent-revoke-on-shutdown", "agent-run-as-user",
	"agent-run-as-group", "agent-run-as-same-user", "agent-set-security-context", "auth-path", "auth-type", "namespace",
	"role", "secret-volume-path", "preserve-secret-case", "log-level", "log-format", "tls-skip-verify", "ca-cert",
	"template-static-secret-render-interval", "agent-inject-default-template"}

// k8sName is a Kubernetes qualified name: what may follow "vault.hashicorp.com/".
var k8sName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// checkInjectorAnnotations checks that every key is a well-formed injector annotation and
// returns the secrets' paths and the templates, by secret name.
func checkInjectorAnnotations(t *testing.T, ann map[string]string) (secrets, templates map[string]string) {
	t.Helper()
	secrets, templates = map[string]string{}, map[string]string{}
	for key, value := range ann {
		name, ok := strings.CutPrefix(key, "vault.hashicorp.com/")
		if !ok || len(name) > 63 || !k8sName.MatchString(name) {
			t.Errorf("annotation %q: not a well-formed vault.hashicorp.com/ key", key)
			continue
		}
		if slices.Contains(injectorKeys, name) {
			continue
		}
		i := slices.IndexFunc(injectorPrefixed, func(p string) bool { return strings.HasPrefix(name, p) && len(name) > len(p) })
		if i < 0 {
			t.Errorf("annotation %q: not an injector annotation", key)
			continue
		}
		secret := strings.TrimPrefix(name, injectorPrefixed[i])
		switch injectorPrefixed[i] {
		case "agent-inject-secret-":
			secrets[secret] = value
		case "agent-inject-template-":
			templates[secret] = value
		}
	}
	for name := range ann {
		for _, p := range injectorPrefixed[1:] {
			if s, ok := strings.CutPrefix(strings.TrimPrefix(name, "vault.hashicorp.com/"), p); ok {
				if _, ok := secrets[s]; !ok {
					t.Errorf("annotation %q belongs to no agent-inject-secret-%s", name, s)
				}
			}
		}
	}
	return secrets, templates
}

// checkRenderedCreds checks rendered values against myapp's creds as root reads them.
func checkRenderedCreds(t *testing.T, f *fixture, domain, clientID, secret, previous string) {
	t.Helper()
	creds := f.mustRequest(t, http.MethodGet, mount+"/creds/myapp", nil)
	if domain != str(t, creds, "domain") || clientID != "myapp-id" || secret != f.secret(t, "myapp-id") || previous != str(t, creds, "previous_client_secret") || previous == "" {
		t.Fatalf("rendered domain %q, client_id %q, a secret that is Auth0's: %v, the previous one: %v", domain, clientID, secret == f.secret(t, "myapp-id"), previous == creds["previous_client_secret"])
	}
	if code := authenticate(t, f.emuURL, clientID, secret); code != http.StatusOK {
		t.Fatalf("the rendered secret: status %d at Auth0", code)
	}
}

// recipeAgentCheck: vault-agent.md's templates and configuration with a real Vault Agent,
// a rotation, and an application that reloads on the command's SIGHUP.
func recipeAgentCheck(t *testing.T, f *fixture) {
	blocks := vaulttest.RecipeBlocks(t, agentRecipe)
	root := t.TempDir()
	for _, d := range []string{"etc/vault-agent", "run/myapp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	at := func(p string) string { return filepath.Join(root, p) }
	for block, file := range map[string]string{"agent-env-template": "etc/vault-agent/myapp.env.ctmpl", "agent-json-template": "etc/vault-agent/myapp.json.ctmpl"} {
		if err := os.WriteFile(at(file), []byte(blocks[block]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := blocks["agent-config"]
	cfg = strings.ReplaceAll(cfg, "/etc/vault-agent/", at("etc/vault-agent")+"/")
	cfg = strings.ReplaceAll(cfg, "/run/myapp/", at("run/myapp")+"/")
	for _, dir := range []string{"/etc/", "/run/"} {
		if strings.Count(cfg, dir) != strings.Count(cfg, root+dir) {
			t.Fatalf("the agent configuration uses a path under %s this test does not move:\n%s", dir, cfg)
		}
	}
	// Agent re-reads creds at their ttl, at most the role's max_ttl: what bounds how late
	// the manual rotation below is noticed.
	f.mustRequest(t, http.MethodPost, mount+"/roles/myapp", map[string]any{"max_ttl": "10s"})
	envFile, jsonFile, pidFile := at("run/myapp/auth0.env"), at("run/myapp/auth0.json"), at("run/myapp/myapp.pid")
	// A template of the test's own, after the recipe's, whose command appends a line to
	// passes.log. Agent renders every template of a pass, then runs the pass's commands one
	// after the other, each to its end, in the order of the templates: a new line means the
	// recipe's command of that pass has finished. Its content, the version, changes with
	// each rotation and only then. The rendered files alone cannot tell that: they are
	// written before the command, which under load ran after the application had started
	// and signalled it with the old secret.
	passes := at("passes.log")
	cfg += fmt.Sprintf("\ntemplate {\n  contents    = %s\n  destination = %s\n  command     = %s\n}\n",
		strconv.Quote(`{{ with secret "auth0/creds/myapp" }}{{ .Data.version }}{{ end }}`),
		strconv.Quote(at("run/version")), strconv.Quote("echo pass >> "+passes))

	agent := vaulttest.StartAgentConfig(t, f.v, f.v.CreateToken(t, recipePolicyApp), cfg)
	// The first pass, command included, is over before the application runs: the command
	// must not fail without a pid file.
	waitForLines(t, passes, "pass", 1, 30*time.Second)
	checkAgentFiles(t, f, readFile(t, envFile), readFile(t, jsonFile))

	// The application: writes its pid file, and on SIGHUP re-reads both files into its log.
	// It gets SIGHUP even where the tests run with SIGHUP ignored: see TestMain.
	reloads := at("reloads.log")
	app := exec.Command("sh", "-c", `trap 'echo reload >> "$LOG"; cat "$ENVF" "$JSONF" >> "$LOG"; echo end >> "$LOG"' HUP
echo $$ > "$PIDF"
while :; do sleep 1 & wait $!; done`)
	app.Env = append(os.Environ(), "LOG="+reloads, "ENVF="+envFile, "JSONF="+jsonFile, "PIDF="+pidFile)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	vaulttest.WaitForFile(t, pidFile, func(s string) bool { return strings.TrimSpace(s) != "" }, 10*time.Second)

	f.rotate(t, f.v.RootToken, "myapp")
	// The rotation's pass: both files rewritten, then the command has signalled the
	// application, whose handler runs on its own.
	waitForLines(t, passes, "pass", 2, 30*time.Second)
	checkAgentFiles(t, f, readFile(t, envFile), readFile(t, jsonFile))
	waitForLines(t, reloads, "end", 1, 30*time.Second)
	// One more read at ttl (max_ttl, 10s): a render that changes nothing runs no command.
	time.Sleep(11 * time.Second)
	log := readFile(t, reloads)
	if n := countLines(readFile(t, passes), "pass"); n != 2 {
		t.Fatalf("the agent ran %d passes with changes, want 2: the first render and the rotation", n)
	}
	if n := countLines(log, "reload"); n != 1 {
		t.Fatalf("the application was signalled %d times for one rotation, want once", n)
	}
	entry := strings.TrimSuffix(strings.TrimPrefix(log, "reload\n"), "end\n")
	envPart, jsonPart, ok := strings.Cut(entry, "{")
	if !ok {
		t.Fatal("the application's reload log does not hold the env file then the JSON file")
	}
	// What the application read when signalled is what the rotation produced: the command
	// ran after both files were re-rendered.
	checkAgentFiles(t, f, envPart, "{"+jsonPart)
	if agent.Exited() {
		t.Fatalf("agent exited:\n%s", agent.Logs())
	}
	// No command failed, the first one (before the application wrote its pid file)
	// included.
	if logs := agent.Logs(); strings.Contains(logs, "template server error") || strings.Contains(logs, "failed to execute command") {
		t.Fatal("a template command failed (agent log above)")
	}
}

// waitForLines polls the file at path until it holds at least n lines that are exactly
// line. Its failure message gives the count, not the content, which may hold secrets.
func waitForLines(t *testing.T, path, line string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		got := countLines(string(b), line)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d %q lines after %v, want %d", filepath.Base(path), got, line, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countLines counts the complete lines of s that are exactly line.
func countLines(s, line string) int {
	n := 0
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == line+"\n" {
			n++
		}
	}
	return n
}

// readFile returns the content of the file at path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkAgentFiles checks the env and JSON renderings against myapp's current creds.
func checkAgentFiles(t *testing.T, f *fixture, envContent, jsonContent string) {
	t.Helper()
	env := parseEnv(t, envContent)
	checkRenderedCreds(t, f, env["AUTH0_DOMAIN"], env["AUTH0_CLIENT_ID"], env["AUTH0_CLIENT_SECRET"], env["AUTH0_PREVIOUS_CLIENT_SECRET"])
	var j struct {
		Domain               string `json:"domain"`
		ClientID             string `json:"client_id"`
		ClientSecret         string `json:"client_secret"`
		PreviousClientSecret string `json:"previous_client_secret"`
		Version              int    `json:"version"`
	}
	dec := json.NewDecoder(strings.NewReader(jsonContent))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || dec.More() {
		t.Fatalf("the JSON file is not one valid JSON object (%v):\n%s", err, jsonContent)
	}
	checkRenderedCreds(t, f, j.Domain, j.ClientID, j.ClientSecret, j.PreviousClientSecret)
	if want := num(t, f.mustRequest(t, http.MethodGet, mount+"/creds/myapp", nil), "version"); j.Version != want {
		t.Fatalf("JSON version %d, want %d", j.Version, want)
	}
}

// parseEnv reads KEY=VALUE lines.
func parseEnv(t *testing.T, content string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(content, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not KEY=VALUE: %q in\n%s", line, content)
		}
		out[k] = v
	}
	return out
}

func stringsOf(x any) []string {
	var out []string
	list, _ := x.([]any)
	for _, e := range list {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// shellCommands splits a shell block into commands: comments and blank lines dropped,
// backslash continuations joined, words split with single and double quotes.
func shellCommands(t *testing.T, block string) [][]string {
	t.Helper()
	var cmds [][]string
	joined := strings.ReplaceAll(block, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var words []string
		var cur strings.Builder
		var quote rune
		inWord := false
		for _, r := range line {
			switch {
			case quote != 0 && r == quote:
				quote = 0
			case quote != 0:
				cur.WriteRune(r)
			case r == '\'' || r == '"':
				quote, inWord = r, true
			case r == ' ' || r == '\t':
				if inWord {
					words, inWord = append(words, cur.String()), false
					cur.Reset()
				}
			case strings.ContainsRune("$`|;&<>(){}*?", r):
				t.Fatalf("shell syntax %q in %q: the test runs plain commands only", r, line)
			default:
				cur.WriteRune(r)
				inWord = true
			}
		}
		if quote != 0 {
			t.Fatalf("unclosed quote in %q", line)
		}
		if inWord {
			words = append(words, cur.String())
		}
		cmds = append(cmds, words)
	}
	return cmds
}

// TestRecipeTerraformVault: terraform-vault.md's HCL, checked against the provider
// arguments and the plugin's paths and fields, then replayed through Vault's HTTP API as
// the provider would apply it, on a Vault without the plugin registered.
func TestRecipeTerraformVault(t *testing.T) {
	t.Parallel()
	emu, emuURL, mgmt := startEmulator(t)
	app := (&fixture{emu: emu}).addApp(t, "myapp-id", "My App")
	v := vaulttest.StartDevServer(t, pluginDir)
	blocks := vaulttest.ParseHCL(t, vaulttest.Recipe(t, tfVaultRecipe, "terraform-vault"))

	refs := map[string]any{
		"var.auth0_domain":                             emuURL,
		"var.plugin_sha256":                            pluginSHA,
		"var.plugin_version":                           pluginVersion,
		"auth0_client.vault.client_id":                 mgmt.ClientID,
		"auth0_client_credentials.vault.client_secret": mgmt.ClientSecret,
		"auth0_client.myapp.client_id":                 app.ClientID,
	}
	// The arguments of the Vault provider this recipe may use.
	args := map[string][]string{
		"variable":               {"type", "description", "default", "sensitive"},
		"vault_plugin":           {"type", "name", "command", "version", "sha256", "args", "env"},
		"vault_mount":            {"path", "type", "description", "plugin_version", "default_lease_ttl_seconds", "max_lease_ttl_seconds", "options", "local", "seal_wrap"},
		"vault_generic_endpoint": {"path", "data_json", "disable_read", "disable_delete", "ignore_absent_fields", "write_fields"},
	}
	meta := []string{"depends_on", "count", "provider"}
	var writes []tfWrite
	var pluginVersionWritten string
	for _, b := range blocks {
		kind := b.Type
		if b.Type == "resource" {
			kind = b.Labels[0]
		}
		allowed, ok := args[kind]
		if !ok {
			t.Fatalf("%s %v: not a block this recipe is checked for", b.Type, b.Labels)
		}
		attrs := map[string]any{}
		for _, a := range b.Attrs {
			if !slices.Contains(allowed, a.Name) && !(b.Type == "resource" && slices.Contains(meta, a.Name)) {
				t.Fatalf("%s %v: %s is not an argument of %s", b.Type, b.Labels, a.Name, kind)
			}
			if a.Name == "depends_on" {
				for _, d := range a.Value.List {
					if _, ok := refs[d.Raw+".id"]; !ok {
						t.Fatalf("%s %v depends on %s, which is not declared before it", b.Type, b.Labels, d.Raw)
					}
				}
				continue
			}
			if b.Type == "variable" {
				continue
			}
			val, err := vaulttest.ResolveHCL(a.Value, refs)
			if err != nil {
				t.Fatalf("%s %v: %s: %v", b.Type, b.Labels, a.Name, err)
			}
			attrs[a.Name] = val
		}
		for _, nested := range b.Blocks {
			if nested.Type != "lifecycle" {
				t.Fatalf("%s %v: unexpected block %s", b.Type, b.Labels, nested.Type)
			}
			if ic, ok := nested.Attr("ignore_changes"); ok && ic.Kind == vaulttest.HCLRef && ic.Raw == "all" {
				attrs["ignore_changes"] = "all"
			}
		}
		if b.Type == "variable" {
			if _, ok := refs["var."+b.Labels[0]]; !ok {
				t.Fatalf("variable %s: this test has no value for it", b.Labels[0])
			}
			continue
		}
		id := b.Labels[0] + "." + b.Labels[1]
		switch kind {
		case "vault_plugin":
			// resource_plugin.go: PUT sys/plugins/catalog/:type/:name
			body := pick(attrs, "sha256", "command", "version", "args", "env")
			if attrs["version"] != pluginVersion {
				t.Fatalf("vault_plugin version %v; the plugin under test reports %s", attrs["version"], pluginVersion)
			}
			mustWrite(t, v, http.MethodPut, fmt.Sprintf("sys/plugins/catalog/%s/%s", attrs["type"], attrs["name"]), body)
			pluginVersionWritten = fmt.Sprint(attrs["version"])
		case "vault_mount":
			// resource_mount.go: POST sys/mounts/:path, plugin_version in config
			body := pick(attrs, "type", "description", "options", "local", "seal_wrap")
			if pv, ok := attrs["plugin_version"]; ok {
				body["config"] = map[string]any{"plugin_version": pv}
			}
			mustWrite(t, v, http.MethodPost, "sys/mounts/"+fmt.Sprint(attrs["path"]), body)
			m := v.Do(t, v.RootToken, http.MethodGet, "sys/mounts/"+fmt.Sprint(attrs["path"]), nil)
			if m.Status != http.StatusOK || m.Data["running_plugin_version"] != pluginVersionWritten || m.Data["type"] != vaulttest.PluginName {
				t.Fatalf("the mount runs %v %v (status %d), want %s %s", m.Data["type"], m.Data["running_plugin_version"], m.Status, vaulttest.PluginName, pluginVersionWritten)
			}
		case "vault_generic_endpoint":
			w := tfWrite{id: id, path: fmt.Sprint(attrs["path"]), attrs: attrs}
			data, ok := attrs["data_json"].(map[string]any)
			if !ok {
				t.Fatalf("%s: data_json is not jsonencode of an object", id)
			}
			w.data = data
			fields, ok := writeFields(t, v, w.path)
			if !ok {
				t.Fatalf("%s: %s is not a writable path of the mounted plugin", id, w.path)
			}
			for k := range data {
				if !slices.Contains(fields, k) {
					t.Fatalf("%s: %s is not a field of %s (fields: %v)", id, k, w.path, fields)
				}
			}
			w.apply(t, v)
			writes = append(writes, w)
		}
		for k, val := range attrs {
			refs[id+"."+k] = val
		}
		refs[id+".id"] = id
	}
	if len(writes) < 2 {
		t.Fatalf("the recipe writes %d endpoints; want config and a role", len(writes))
	}

	// What the recipe promises once applied: creds serve the application's current secret
	// (adopted), and the engine reaches Auth0 with the config it wrote.
	var role *tfWrite
	for i := range writes {
		if strings.Contains(writes[i].path, "/roles/") && writes[i].attrs["disable_read"] != true {
			role = &writes[i]
		}
	}
	if role == nil {
		t.Fatal("no managed role endpoint")
	}
	rolePath := role.path
	current := func() string {
		secret, _ := emu.ClientSecret(app.ClientID)
		return secret
	}
	credsPath := strings.Replace(rolePath, "/roles/", "/creds/", 1)
	c := v.Do(t, v.RootToken, http.MethodGet, credsPath, nil)
	if c.Status != http.StatusOK || c.Data["client_secret"] != current() {
		t.Fatalf("%s: status %d; want the application's current secret (adopted)", credsPath, c.Status)
	}

	// A later apply that changes the role sends its whole data_json again: accepted. The
	// adopting resource is never written again (ignore_changes = all): its data would be
	// refused, as the recipe says.
	changed := *role
	changed.data = map[string]any{}
	for k, val := range role.data {
		changed.data[k] = val
	}
	changed.data["stage_period"] = float64(3600)
	changed.apply(t, v)
	for _, w := range writes {
		if _, imports := w.data["import_current_secret"]; !imports {
			continue
		}
		if w.attrs["ignore_changes"] != "all" || w.attrs["disable_read"] != true {
			t.Errorf("%s sets import_current_secret without lifecycle ignore_changes = all and disable_read", w.id)
		}
		r := v.Do(t, v.RootToken, http.MethodPut, w.path, w.data)
		if r.Status != http.StatusBadRequest || !strings.Contains(strings.Join(r.Errors, " "), "only when the role is created") {
			t.Errorf("writing %s's data again: status %d %v, want it refused as create-only", w.id, r.Status, r.Errors)
		}
	}

	// After a root rotation, an apply with the state's old secret is refused and the
	// engine keeps working.
	var cfg *tfWrite
	for i := range writes {
		if strings.HasSuffix(writes[i].path, "/config") {
			cfg = &writes[i]
		}
	}
	if cfg == nil {
		t.Fatal("no config endpoint")
	}
	mountPath := strings.TrimSuffix(cfg.path, "/config")
	mustWrite(t, v, http.MethodPut, mountPath+"/config/rotate-root", nil)
	if r := v.Do(t, v.RootToken, http.MethodPut, cfg.path, cfg.data); r.Status < 400 || r.Status >= 500 {
		t.Fatalf("rewriting config with the secret rotate-root replaced: status %d, want it refused", r.Status)
	}
	before := current()
	mustWrite(t, v, http.MethodPut, strings.Replace(rolePath, "/roles/", "/rotate/", 1), map[string]any{"switch_now": true})
	if c := v.Do(t, v.RootToken, http.MethodGet, credsPath, nil); c.Status != http.StatusOK || c.Data["client_secret"] != current() || current() == before {
		t.Fatalf("after the refused config write the engine does not rotate with its config (status %d)", c.Status)
	}
}

// tfWrite is one vault_generic_endpoint as the provider applies it.
type tfWrite struct {
	id, path string
	attrs    map[string]any // the resource's resolved arguments
	data     map[string]any // data_json
}

// apply writes data to path as the provider does on create or update (PUT), then, unless
// disable_read, reads it back as a refresh does: every field written must come back
// unchanged, or be absent with ignore_absent_fields, else every plan shows a change.
func (w tfWrite) apply(t *testing.T, v *vaulttest.Vault) {
	t.Helper()
	mustWrite(t, v, http.MethodPut, w.path, w.data)
	if w.attrs["disable_read"] == true {
		return
	}
	r := v.Do(t, v.RootToken, http.MethodGet, w.path, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("%s: reading %s back: status %d: %v", w.id, w.path, r.Status, r.Errors)
	}
	for k, want := range w.data {
		got, ok := r.Data[k]
		switch {
		case !ok && w.attrs["ignore_absent_fields"] != true:
			t.Errorf("%s: %s is not read back; without ignore_absent_fields every plan shows a change", w.id, k)
		case ok && !reflect.DeepEqual(jsonValue(t, got), jsonValue(t, want)):
			t.Errorf("%s: %s written as %v, read back as %v: every plan would show a change", w.id, k, want, got)
		}
	}
}

// jsonValue normalizes x through JSON (numbers become float64).
func jsonValue(t *testing.T, x any) any {
	t.Helper()
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// pick returns the entries of m named in names.
func pick(m map[string]any, names ...string) map[string]any {
	out := map[string]any{}
	for _, n := range names {
		if x, ok := m[n]; ok {
			out[n] = x
		}
	}
	return out
}

// mustWrite sends a request to v as root and fails unless it succeeds; it returns the
// answer's data.
func mustWrite(t *testing.T, v *vaulttest.Vault, method, path string, body map[string]any) map[string]any {
	t.Helper()
	r := v.Do(t, v.RootToken, method, path, body)
	if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
		t.Fatalf("%s %s: status %d: %v", method, path, r.Status, r.Errors)
	}
	return r.Data
}

// writeFields returns the fields a write to path (e.g. auth0/roles/myapp) accepts, from
// the OpenAPI document the plugin serves for it (`vault path-help`: GET path?help=1).
// Vault 1.13's merged document (sys/internal/specs/openapi) lists the plugin's paths but
// not their request schemas, so the per-path document is used. ok is false when the
// plugin has no such path.
func writeFields(t *testing.T, v *vaulttest.Vault, path string) (fields []string, ok bool) {
	t.Helper()
	r := v.Do(t, v.RootToken, http.MethodGet, path+"?help=1", nil)
	if r.Status != http.StatusOK {
		return nil, false
	}
	var doc struct {
		OpenAPI struct {
			Paths      map[string]map[string]json.RawMessage `json:"paths"`
			Components struct {
				Schemas map[string]struct {
					Properties map[string]any `json:"properties"`
				} `json:"schemas"`
			} `json:"components"`
		} `json:"openapi"`
	}
	if err := json.Unmarshal(r.Raw, &doc); err != nil {
		t.Fatalf("%s?help=1: %v", path, err)
	}
	if len(doc.OpenAPI.Paths) != 1 {
		return nil, false
	}
	for _, ops := range doc.OpenAPI.Paths {
		var op struct {
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		}
		if raw, has := ops["post"]; !has || json.Unmarshal(raw, &op) != nil {
			return nil, false
		}
		for _, c := range op.RequestBody.Content {
			name, _ := strings.CutPrefix(c.Schema.Ref, "#/components/schemas/")
			for k := range doc.OpenAPI.Components.Schemas[name].Properties {
				fields = append(fields, k)
			}
		}
	}
	slices.Sort(fields)
	return fields, len(fields) > 0
}
