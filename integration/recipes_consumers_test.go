package integration

// TestRecipesConsumers: the Kubernetes consumer recipes (vso.md, csi.md, eso.md) against a
// real Vault. No cluster runs: the test takes from the manifests what each consumer would
// read from Vault, and as whom, and reads it itself with a token of the Kubernetes auth
// role's policies, in every state the roles go through. The manifests' own fields are
// checked by the tools/crds module, against the consumers' types.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

const (
	vsoRecipe = "docs/recipes/vso.md"
	csiRecipe = "docs/recipes/csi.md"
	esoRecipe = "docs/recipes/eso.md"

	// kubeletDelay is how late the kubelet may bring a changed Secret into a mounted
	// volume (its sync period plus its cache's), or republish a CSI volume: the recipes say
	// 60 to 90 seconds.
	kubeletDelay = 90 * time.Second
)

// consumerRead is one Vault read a recipe's consumer makes, and as whom: the Kubernetes
// auth role it logs in with, as a service account of a namespace.
type consumerRead struct {
	what                           string   // the manifest that makes it, for messages
	path                           string   // the Vault path, mount included
	keys                           []string // the fields the consumer or the pod takes by name
	k8sRole, serviceAccount, k8sNS string
}

// consumerRecipe is what a recipe's consumer reads, and how late it notices a change
// (zero lag: the role's max_ttl, as for VSO).
type consumerRecipe struct {
	name  string
	reads []consumerRead
	lag   time.Duration
	// secretKeys: every field of the answer becomes a key of a Kubernetes Secret (VSO, ESO).
	secretKeys bool
}

// secretKey is what a Kubernetes Secret accepts as a key.
var secretKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// TestRecipesConsumers runs the Vault side of vso.md (roles, Kubernetes auth role) with the
// policies of policies.md, then walks both roles through their states (first version; a
// next secret staged; switched; a key role's overlap; after end_overlap) and in each reads
// every path of vso.md, csi.md and eso.md as their consumer would.
func TestRecipesConsumers(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t) // propagation_wait=0: a new key is served at once
	v, root := f.v, f.v.RootToken
	app := f.addApp(t, "myapp-id", "My App")
	keyApp := f.addApp(t, "myapp-keys-id", "My App With Keys")

	// The roles, as vso.md writes them, for the emulator's applications.
	placeholders := strings.NewReplacer("MYAPP_KEYS_CLIENT_ID", keyApp.ClientID, "MYAPP_CLIENT_ID", app.ClientID)
	for _, args := range shellCommands(t, placeholders.Replace(vaulttest.Recipe(t, vsoRecipe, "vso-roles"))) {
		if len(args) < 3 || args[0] != "vault" || args[1] != "write" || !strings.HasPrefix(args[2], mount+"/roles/") {
			t.Fatalf("vso-roles: %q is not a vault write of a role", args)
		}
		v.MustCLI(t, root, args[1:]...)
	}
	staged, keyed := recipeRole(t, f, "myapp"), recipeRole(t, f, "myapp-keys")
	if staged["rotation_strategy"] != "staged" || keyed["credential_type"] != "private_key_jwt" {
		t.Fatalf("vso-roles: myapp is %v, myapp-keys is %v: want a staged role and a private_key_jwt role", staged["rotation_strategy"], keyed["credential_type"])
	}

	// The policies, from policies.md, and the Kubernetes auth role.
	policyBlocks := vaulttest.RecipeBlocks(t, policiesRecipe)
	for block, name := range recipePolicies {
		v.WritePolicy(t, name, policyBlocks[block])
	}
	f.mustRequest(t, http.MethodPost, "sys/auth/kubernetes", map[string]any{"type": "kubernetes"})
	var k8sRole string
	for _, args := range shellCommands(t, vaulttest.Recipe(t, vsoRecipe, "vso-vault-role")) {
		if len(args) < 3 || args[0] != "vault" || args[1] != "write" {
			t.Fatalf("vso-vault-role: unexpected command %q", args)
		}
		v.MustCLI(t, root, args[1:]...)
		if r, ok := strings.CutPrefix(args[2], "auth/kubernetes/role/"); ok {
			k8sRole = r
		}
	}
	if k8sRole == "" {
		t.Fatal("vso-vault-role writes no auth/kubernetes/role/")
	}
	login := f.mustRequest(t, http.MethodGet, "auth/kubernetes/role/"+k8sRole, nil)
	policies := stringsOf(login["token_policies"])
	token := v.CreateToken(t, policies...)

	recipes := []consumerRecipe{vsoReads(t), csiReads(t), esoReads(t)}

	// The first versions: myapp switched at once (no next secret staged), myapp-keys cut
	// over from its client secret (no previous key).
	f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp", map[string]any{"switch_now": true})
	f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp-keys", nil)

	type state struct {
		name  string
		do    func()
		check func(t *testing.T, before, now map[string]map[string]any) // root's answers, by role
	}
	states := []state{
		{name: "first versions", check: func(t *testing.T, _, now map[string]map[string]any) {
			wantFields(t, now["myapp"], map[string]any{"version": 1, "next_client_secret": "", "next_version": 0})
			wantFields(t, now["myapp-keys"], map[string]any{"version": 1, "previous_private_key": "", "previous_kid": "", "overlap_until": ""})
		}},
		{name: "myapp staged", do: func() { f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp", nil) }, check: func(t *testing.T, before, now map[string]map[string]any) {
			next := str(t, now["myapp"], "next_client_secret")
			wantFields(t, now["myapp"], map[string]any{"version": 1, "next_version": 2, "client_secret": before["myapp"]["client_secret"]})
			if next == "" || next == now["myapp"]["client_secret"] {
				t.Error("no new next_client_secret staged")
			}
		}},
		{name: "myapp switched", do: func() {
			f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp", map[string]any{"switch_now": true})
		}, check: func(t *testing.T, before, now map[string]map[string]any) {
			wantFields(t, now["myapp"], map[string]any{"version": 2, "next_client_secret": "", "next_version": 0,
				"client_secret": before["myapp"]["next_client_secret"], "previous_client_secret": before["myapp"]["client_secret"]})
		}},
		{name: "myapp-keys overlap", do: func() { f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp-keys", nil) }, check: func(t *testing.T, before, now map[string]map[string]any) {
			wantFields(t, now["myapp-keys"], map[string]any{"version": 2,
				"previous_private_key": before["myapp-keys"]["private_key"], "previous_kid": before["myapp-keys"]["kid"]})
		}},
		{name: "myapp-keys after end_overlap", do: func() {
			f.mustRequest(t, http.MethodPost, mount+"/rotate/myapp-keys", map[string]any{"end_overlap": true})
		}, check: func(t *testing.T, before, now map[string]map[string]any) {
			wantFields(t, now["myapp-keys"], map[string]any{"version": 3,
				"previous_private_key": before["myapp-keys"]["private_key"], "previous_kid": before["myapp-keys"]["kid"]})
		}},
	}

	// Each state is taken in turn, with the answers the consumers' token gets in it; the
	// checks of the answers follow, by recipe.
	type snapshot struct {
		name    string
		answers map[string]map[string]any // by path
		errs    map[string]string         // refusals, by path
	}
	var snapshots []snapshot
	var before map[string]map[string]any
	for _, s := range states {
		if s.do != nil {
			s.do()
		}
		now := map[string]map[string]any{}
		for _, role := range []string{"myapp", "myapp-keys"} {
			now[role] = f.mustRequest(t, http.MethodGet, mount+"/creds/"+role, nil)
		}
		t.Run("state "+s.name, func(t *testing.T) {
			s.check(t, before, now)
			// What an application uses works at Auth0.
			if status := authenticate(t, f.emuURL, app.ClientID, str(t, now["myapp"], "client_secret")); status != http.StatusOK {
				t.Errorf("myapp's client_secret: status %d at Auth0", status)
			}
			k := now["myapp-keys"]
			if str(t, k, "key_id") == "" || str(t, k, "kid") == "" {
				t.Errorf("myapp-keys answers key_id %q, kid %q", k["key_id"], k["kid"])
			}
			if status, desc := keyLoginPEM(t, f.emuURL, keyApp.ClientID, str(t, k, "private_key"), str(t, k, "algorithm"), str(t, k, "kid")); status != http.StatusOK {
				t.Errorf("myapp-keys' private_key: status %d at Auth0: %s", status, desc)
			}
		})
		before = now
		snap := snapshot{name: s.name, answers: map[string]map[string]any{}, errs: map[string]string{}}
		for _, r := range recipes {
			for _, rd := range r.reads {
				status, data, errs := v.Request(t, token, http.MethodGet, rd.path, nil)
				if status != http.StatusOK {
					snap.errs[rd.path] = fmt.Sprintf("status %d: %v", status, errs)
					continue
				}
				snap.answers[rd.path] = data
			}
		}
		snapshots = append(snapshots, snap)
	}

	for _, r := range recipes {
		t.Run(r.name, func(t *testing.T) {
			// The consumer logs in with the Kubernetes auth role of vso.md, as a service
			// account that role binds: the token above is what it gets.
			for _, rd := range r.reads {
				if rd.k8sRole != k8sRole {
					t.Errorf("%s logs in with Kubernetes auth role %q, not vso.md's %q", rd.what, rd.k8sRole, k8sRole)
				}
				if !slices.Contains(stringsOf(login["bound_service_account_names"]), rd.serviceAccount) ||
					!slices.Contains(stringsOf(login["bound_service_account_namespaces"]), rd.k8sNS) {
					t.Errorf("%s logs in as %s/%s; the Kubernetes auth role binds %v in %v", rd.what, rd.k8sNS, rd.serviceAccount, login["bound_service_account_names"], login["bound_service_account_namespaces"])
				}
			}
			checkConsumerLag(t, f, r)
			for _, snap := range snapshots {
				t.Run(snap.name, func(t *testing.T) {
					for _, rd := range r.reads {
						if e, refused := snap.errs[rd.path]; refused {
							t.Errorf("%s: %s with policies %v: %s", rd.what, rd.path, policies, e)
							continue
						}
						checkConsumerAnswer(t, r, rd, snap.answers[rd.path])
					}
				})
			}
		})
	}
}

// recipeRole reads role name as root.
func recipeRole(t *testing.T, f *fixture, name string) map[string]any {
	t.Helper()
	return f.mustRequest(t, http.MethodGet, mount+"/roles/"+name, nil)
}

// wantFields checks fields of an answer; numbers compare as integers.
func wantFields(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if n, isNum := w.(int); isNum {
			if g := num(t, got, k); g != n {
				t.Errorf("%s = %d, want %d", k, g, n)
			}
			continue
		}
		if g := str(t, got, k); g != w {
			t.Errorf("%s = %.12q…, want %.12q…", k, g, w)
		}
	}
}

// checkConsumerAnswer checks one answer as the recipe's consumer takes it.
func checkConsumerAnswer(t *testing.T, r consumerRecipe, rd consumerRead, d map[string]any) {
	t.Helper()
	for _, k := range rd.keys {
		if _, ok := d[k]; !ok {
			t.Errorf("%s: %s has no %q (the consumer fails without it); fields: %v", rd.what, rd.path, k, keys(d))
		} else if _, isString := d[k].(string); !isString {
			t.Errorf("%s: %s answers %q as %T, not text", rd.what, rd.path, k, d[k])
		}
	}
	// What an application uses is never empty.
	want := []string{"client_id", "domain", "client_secret"}
	if _, isKey := d["private_key"]; isKey {
		want = []string{"client_id", "domain", "private_key", "key_id", "kid"}
	}
	for _, k := range want {
		if s, _ := d[k].(string); s == "" {
			t.Errorf("%s: %s answers no %s", rd.what, rd.path, k)
		}
	}
	// The Vault CSI provider looks inside a top-level object named data (KV v2).
	if _, isObject := d["data"].(map[string]any); isObject {
		t.Errorf("%s: %s answers an object named data: every secretKey would be looked up inside it", rd.what, rd.path)
	}
	if r.secretKeys {
		for k := range d {
			if !secretKey.MatchString(k) || k == "_raw" {
				t.Errorf("%s: %s answers %q, which cannot be a key of the Secret", rd.what, rd.path, k)
			}
		}
	}
	// VSO treats the answer as a static credential, re-read at ttl, only with these.
	if lvr := rfc3339(t, d, "last_vault_rotation"); lvr.IsZero() {
		t.Errorf("%s: %s: last_vault_rotation is zero", rd.what, rd.path)
	}
	if p := num(t, d, "rotation_period"); p < 1 {
		t.Errorf("%s: %s: rotation_period %d, want at least 1", rd.what, rd.path, p)
	}
	if ttl := num(t, d, "ttl"); ttl < 1 {
		t.Errorf("%s: %s: ttl %d, want at least 1", rd.what, rd.path, ttl)
	}
}

// checkConsumerLag checks the recipe's timing rule against the roles it reads: how late
// the consumer notices a change, plus the kubelet's delay, twice over, must fit in the
// time between publishing a credential and needing it (stage_period, overlap_period).
// For VSO the lag is the role's max_ttl, and every ttl must stay within it.
func checkConsumerLag(t *testing.T, f *fixture, r consumerRecipe) {
	t.Helper()
	seen := map[string]bool{}
	for _, rd := range r.reads {
		name := rd.path[strings.LastIndexByte(rd.path, '/')+1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		role := recipeRole(t, f, name)
		var period time.Duration
		switch {
		case role["rotation_strategy"] == "staged":
			period = time.Duration(num(t, role, "stage_period")) * time.Second
		case role["credential_type"] == "private_key_jwt":
			period = time.Duration(num(t, role, "overlap_period")) * time.Second
		default:
			t.Errorf("%s reads role %s, neither staged nor private_key_jwt: pods fail from each rotation until they have the new secret", rd.what, name)
			continue
		}
		lag := r.lag
		if lag == 0 {
			maxTTL := num(t, role, "max_ttl")
			lag = time.Duration(maxTTL)*time.Second + 500*time.Millisecond
			if ttl := num(t, f.mustRequest(t, http.MethodGet, mount+"/creds/"+name, nil), "ttl"); ttl > maxTTL {
				t.Errorf("role %s answers ttl %d above its max_ttl %d", name, ttl, maxTTL)
			}
		}
		if need := 2 * (lag + kubeletDelay); need > period {
			t.Errorf("%s: a change reaches the pod up to %v late (%v, and the kubelet's %v); role %s publishes it only %v ahead, want at least %v",
				rd.what, lag+kubeletDelay, lag, kubeletDelay, name, period, need)
		}
	}
}

// yamlDocs decodes the documents of a YAML block.
func yamlDocs(t *testing.T, file, block string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(vaulttest.Recipe(t, file, block)))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s, block %s: %v", file, block, err)
		}
		docs = append(docs, d)
	}
}

// at returns what is at path in a decoded document (nil when absent).
func at(d any, path ...string) any {
	for _, p := range path {
		m, _ := d.(map[string]any)
		d = m[p]
	}
	return d
}

// dig returns the value at path in a decoded document as text ("" when absent).
func dig(d any, path ...string) string {
	if v := at(d, path...); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// vsoReads: every VaultDynamicSecret reads mount/path as the VaultAuth's service account;
// the Deployment takes keys of the Secret it writes.
func vsoReads(t *testing.T) consumerRecipe {
	r := consumerRecipe{name: "vso", secretKeys: true}
	auths := map[string]map[string]any{}
	for _, d := range yamlDocs(t, vsoRecipe, "vso-auth") {
		if d["kind"] == "VaultAuth" {
			auths[dig(d, "metadata", "name")] = d
		}
	}
	envKeys := map[string][]string{} // Secret name -> keys the Deployment takes
	for _, d := range yamlDocs(t, vsoRecipe, "vso-deployment") {
		containers, _ := at(d, "spec", "template", "spec", "containers").([]any)
		for _, c := range containers {
			env, _ := at(c, "env").([]any)
			for _, e := range env {
				if name := dig(e, "valueFrom", "secretKeyRef", "name"); name != "" {
					envKeys[name] = append(envKeys[name], dig(e, "valueFrom", "secretKeyRef", "key"))
				}
			}
		}
	}
	if len(envKeys) == 0 {
		t.Fatal("vso.md: the Deployment takes no key of a Secret")
	}
	for _, block := range []string{"vso-secret", "vso-secret-keys"} {
		for _, d := range yamlDocs(t, vsoRecipe, block) {
			if d["kind"] != "VaultDynamicSecret" {
				continue
			}
			auth, ok := auths[dig(d, "spec", "vaultAuthRef")]
			if !ok {
				t.Fatalf("vso.md, %s: vaultAuthRef %q names no VaultAuth of vso-auth", block, dig(d, "spec", "vaultAuthRef"))
			}
			if m := dig(d, "spec", "requestHTTPMethod"); m != "" && m != http.MethodGet {
				t.Fatalf("vso.md, %s: requestHTTPMethod %s; creds are read with GET", block, m)
			}
			r.reads = append(r.reads, consumerRead{
				what:           "VaultDynamicSecret " + dig(d, "metadata", "name"),
				path:           dig(d, "spec", "mount") + "/" + dig(d, "spec", "path"),
				keys:           envKeys[dig(d, "spec", "destination", "name")],
				k8sRole:        dig(auth, "spec", "kubernetes", "role"),
				serviceAccount: dig(auth, "spec", "kubernetes", "serviceAccount"),
				k8sNS:          dig(auth, "metadata", "namespace"),
			})
		}
	}
	if len(r.reads) < 2 {
		t.Fatalf("vso.md: %d VaultDynamicSecrets, want one per role", len(r.reads))
	}
	return r
}

// csiReads: every object of every SecretProviderClass, read as the pod's service account;
// the lag is the driver's rotationPollInterval.
func csiReads(t *testing.T) consumerRecipe {
	r := consumerRecipe{name: "csi"}
	var values struct {
		RotationPollInterval string `yaml:"rotationPollInterval"`
	}
	if err := yaml.Unmarshal([]byte(vaulttest.Recipe(t, csiRecipe, "csi-driver-values")), &values); err != nil {
		t.Fatal(err)
	}
	poll, err := time.ParseDuration(values.RotationPollInterval)
	if err != nil {
		t.Fatalf("csi.md: rotationPollInterval: %v", err)
	}
	r.lag = poll
	// The provider logs in as the pod's service account.
	pod := yamlDocs(t, csiRecipe, "csi-pod")[0]
	for _, block := range []string{"csi-secret-provider-class", "csi-secret-provider-class-keys"} {
		spc := yamlDocs(t, csiRecipe, block)[0]
		var objects []struct {
			ObjectName string `yaml:"objectName"`
			SecretPath string `yaml:"secretPath"`
			SecretKey  string `yaml:"secretKey"`
		}
		if err := yaml.Unmarshal([]byte(dig(spc, "spec", "parameters", "objects")), &objects); err != nil {
			t.Fatalf("csi.md, %s: objects: %v", block, err)
		}
		byPath := map[string][]string{}
		var paths []string
		for _, o := range objects {
			if o.SecretKey == "" {
				t.Fatalf("csi.md, %s: object %s names no secretKey: the file would hold the whole answer", block, o.ObjectName)
			}
			if _, ok := byPath[o.SecretPath]; !ok {
				paths = append(paths, o.SecretPath)
			}
			byPath[o.SecretPath] = append(byPath[o.SecretPath], o.SecretKey)
		}
		for _, p := range paths {
			r.reads = append(r.reads, consumerRead{
				what: "SecretProviderClass " + dig(spc, "metadata", "name"), path: p, keys: byPath[p],
				k8sRole:        dig(spc, "spec", "parameters", "roleName"),
				serviceAccount: dig(pod, "spec", "serviceAccountName"),
				k8sNS:          dig(pod, "metadata", "namespace"),
			})
		}
	}
	return r
}

// esoReads: every VaultDynamicSecret generator's path, read as its service account; the
// lag is the refreshInterval of the ExternalSecret that uses it (the largest, if several).
func esoReads(t *testing.T) consumerRecipe {
	r := consumerRecipe{name: "eso", secretKeys: true}
	for _, block := range []string{"eso-secret", "eso-secret-keys"} {
		var generators []map[string]any
		for _, d := range yamlDocs(t, esoRecipe, block) {
			switch d["kind"] {
			case "VaultDynamicSecret":
				generators = append(generators, d)
			case "ExternalSecret":
				refresh, err := time.ParseDuration(dig(d, "spec", "refreshInterval"))
				if err != nil {
					t.Fatalf("eso.md, %s: refreshInterval: %v", block, err)
				}
				r.lag = max(r.lag, refresh)
			}
		}
		for _, g := range generators {
			if m := dig(g, "spec", "method"); m != "" && m != http.MethodGet {
				t.Fatalf("eso.md, %s: method %s; creds are read with GET", block, m)
			}
			k8s := at(g, "spec", "provider", "auth", "kubernetes")
			r.reads = append(r.reads, consumerRead{
				what:           "VaultDynamicSecret " + dig(g, "metadata", "name"),
				path:           dig(g, "spec", "path"),
				k8sRole:        dig(k8s, "role"),
				serviceAccount: dig(k8s, "serviceAccountRef", "name"),
				k8sNS:          dig(g, "metadata", "namespace"),
			})
		}
	}
	if r.lag <= 0 {
		t.Fatal("eso.md: no ExternalSecret with a refreshInterval")
	}
	return r
}
