package integration

import (
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// v020DevCommit is the last commit of v0.2.0 before the credential kinds became one
// interface (docs/ARCHITECTURE.md): its storage is what a v0.2.0 mount holds. The test
// below builds the plugin from it.
const (
	v020DevCommit  = "19588257bc29bf0a3d601f122db1a0d452dcb79d"
	v020DevVersion = "v0.2.0-dev.0"
	v020DevCommand = vaulttest.PluginName + "-" + v020DevVersion
)

// TestUpgradeFromV020Storage upgrades a mount whose storage v0.2.0 wrote, with every kind
// of role mid-life, to this build on a real Vault: an immediate role with versions, a
// staged role with a secret published and not yet switched, and a private_key_jwt role in
// the overlap of its second key. Every role read and every creds read answers the same
// after the upgrade (the timing fields aside), and each role then goes on: the immediate
// one rotates, the staged secret switches, the key overlap ends, and the key creds serve
// logs in.
func TestUpgradeFromV020Storage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldSHA := buildCommit(t, dir, v020DevCommit, v020DevVersion, v020DevCommand)
	if err := copyFile(filepath.Join(pluginDir, vaulttest.PluginName), filepath.Join(dir, vaulttest.PluginName)); err != nil {
		t.Fatal(err)
	}
	emu, emuURL, mgmt := startStagedEmulator(t, keyScopes)
	v := vaulttest.StartDevServer(t, dir)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
	root := v.RootToken
	v.MustCLI(t, root, "plugin", "register", "-sha256="+oldSHA, "-version="+v020DevVersion, "-command="+v020DevCommand, "secret", vaulttest.PluginName)
	v.MustCLI(t, root, "secrets", "enable", "-path="+mount, "-plugin-version="+v020DevVersion, vaulttest.PluginName)
	f.configure(t)
	v.MustCLI(t, root, "write", mount+"/config", "propagation_wait=0", "rate_limit=50")

	// The old build at work: each kind of role mid-life.
	for _, id := range []string{"imm-id", "stg-id", "key-id"} {
		f.addApp(t, id, id)
	}
	v.MustCLI(t, root, "write", mount+"/roles/imm", "client_id=imm-id", "rotation_period=720h")
	f.rotate(t, root, "imm")
	f.rotate(t, root, "imm")
	v.MustCLI(t, root, "write", mount+"/roles/stg", "client_id=stg-id", "rotation_strategy=staged", "stage_period=1h")
	v.MustCLI(t, root, "write", mount+"/rotate/stg", "switch_now=true") // version 1
	f.rotate(t, root, "stg")                                            // version 2 staged, switching in an hour
	v.MustCLI(t, root, "write", mount+"/roles/key", "client_id=key-id", "credential_type=private_key_jwt",
		"allow_auth_method_change=true", "overlap_period=1h")
	f.rotate(t, root, "key")
	f.rotate(t, root, "key") // version 2, version 1 in its overlap

	read := func(path string) map[string]any {
		t.Helper()
		r := v.Do(t, root, http.MethodGet, mount+"/"+path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("reading %s: status %d: %v", path, r.Status, r.Errors)
		}
		// What moves with the clock between two reads, not with storage.
		if strings.HasPrefix(path, "creds/") {
			delete(r.Data, "ttl")
			delete(r.Data, "last_vault_rotation")
		}
		return r.Data
	}
	paths := []string{"roles/imm", "roles/stg", "roles/key", "creds/imm", "creds/stg", "creds/key", "versions/imm", "versions/stg", "versions/key"}
	before := map[string]map[string]any{}
	for _, p := range paths {
		before[p] = read(p)
	}
	if before["creds/stg"]["next_client_secret"] == "" || before["creds/key"]["previous_private_key"] == "" {
		t.Fatalf("the old build did not leave a staged secret and a key overlap: %v %v", before["creds/stg"]["next_version"], before["creds/key"]["previous_key_id"])
	}

	v.RegisterPlugin(t, dir, pluginSHA, pluginVersion)
	switchVersion(t, v, pluginVersion)
	for _, p := range paths {
		got := read(p)
		want := before[p]
		for k, w := range want {
			if !reflect.DeepEqual(got[k], w) {
				t.Errorf("%s: %s was %v before the upgrade, %v after", p, k, w, got[k])
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// And each goes on.
	f.rotate(t, root, "imm")
	if n := num(t, read("roles/imm"), "current_version"); n != 3 {
		t.Errorf("imm: version %d after a rotation, want 3", n)
	}
	if code := authenticate(t, emuURL, "imm-id", str(t, read("creds/imm"), "client_secret")); code != http.StatusOK {
		t.Errorf("imm: the secret creds serve after the upgrade gets %d", code)
	}
	v.MustCLI(t, root, "write", mount+"/rotate/stg", "switch_now=true")
	stg := read("creds/stg")
	if num(t, stg, "version") != 2 || stg["client_secret"] != before["creds/stg"]["next_client_secret"] {
		t.Errorf("stg: switch_now after the upgrade serves version %v, not the secret the old build staged", stg["version"])
	}
	if code := authenticate(t, emuURL, "stg-id", str(t, stg, "client_secret")); code != http.StatusOK {
		t.Errorf("stg: the switched secret gets %d", code)
	}
	// end_overlap=true detaches the key the old build left in its overlap, then rotates.
	v.MustCLI(t, root, "write", mount+"/rotate/key", "end_overlap=true")
	key := read("creds/key")
	old := before["creds/key"]
	if num(t, key, "version") != 3 || key["previous_key_id"] != old["key_id"] {
		t.Errorf("key: after end_overlap creds serve version %v with previous %v; want version 3 with the old build's current key %v", key["version"], key["previous_key_id"], old["key_id"])
	}
	stored, attached := auth0Keys(emu, "key-id")
	want := []string{str(t, key, "key_id"), str(t, old, "key_id")}
	slices.Sort(want)
	if !slices.Equal(stored, want) || !slices.Equal(attached, want) {
		t.Errorf("key: Auth0 stores %v, attaches %v; want %v (the old overlap's key deleted)", stored, attached, want)
	}
	if code, desc := keyLoginPEM(t, emuURL, "key-id", str(t, key, "private_key"), str(t, key, "algorithm"), str(t, key, "kid")); code != http.StatusOK {
		t.Errorf("key: the key creds serve after the upgrade gets %d: %s", code, desc)
	}
	if code, _ := keyLoginPEM(t, emuURL, "key-id", str(t, old, "previous_private_key"), str(t, old, "algorithm"), str(t, old, "previous_kid")); code != http.StatusUnauthorized {
		t.Errorf("key: the key whose overlap end_overlap ended still gets %d", code)
	}
}
