package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// TestLifecycle walks the engine from registration to a second rotation and
// checks every answer against the emulator's state.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	emu, emuURL, mgmt := startEmulator(t)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt}
	app := f.addApp(t, "myapp-id", "My App")

	// Register with -sha256 and -version, and find it in the catalog.
	v := vaulttest.StartDevServer(t, pluginDir)
	f.v = v
	root := v.RootToken
	// The binary reports its version, so Vault refuses any other.
	if out, err := v.CLI(t, root, "plugin", "register", "-sha256="+pluginSHA, "-version=v9.9.9",
		"-command="+vaulttest.PluginName, "secret", vaulttest.PluginName); err == nil {
		t.Errorf("registering as v9.9.9 succeeded: %s", out)
	} else if !strings.Contains(err.Error(), "reported version ("+pluginVersion+")") {
		t.Errorf("registering as v9.9.9: %v; want Vault's version mismatch naming %s", err, pluginVersion)
	}
	v.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	// `plugin info -format=json` prints the fields at the top level.
	info := v.MustCLIJSON(t, root, "plugin", "info", "-version="+pluginVersion, "secret", vaulttest.PluginName)
	if got := str(t, info, "name"); got != vaulttest.PluginName {
		t.Errorf("plugin info name = %q, want %q", got, vaulttest.PluginName)
	}
	if got := str(t, info, "version"); got != pluginVersion {
		t.Errorf("plugin info version = %q, want %q", got, pluginVersion)
	}
	if got := str(t, info, "sha256"); got != pluginSHA {
		t.Errorf("plugin info sha256 = %q, want %q", got, pluginSHA)
	}
	if got, _ := info["builtin"].(bool); got {
		t.Errorf("plugin info builtin = true, want false")
	}

	// Mount, and see the running version both through the CLI and sys/mounts.
	v.Mount(t, mount, pluginVersion)
	mounts := v.MustCLIJSON(t, root, "secrets", "list", "-detailed")
	m, ok := mounts[mount+"/"].(map[string]any)
	if !ok {
		t.Fatalf("secrets list has no %s/ mount: %v", mount, keys(mounts))
	}
	for field, want := range map[string]string{
		"type":                   vaulttest.PluginName,
		"plugin_version":         pluginVersion,
		"running_plugin_version": pluginVersion,
		"running_sha256":         pluginSHA,
	} {
		if got := str(t, m, field); got != want {
			t.Errorf("secrets list -detailed: %s/ %s = %q, want %q", mount, field, got, want)
		}
	}
	status, data, errs := v.Request(t, root, http.MethodGet, "sys/mounts", nil)
	if status != http.StatusOK {
		t.Fatalf("GET sys/mounts: status %d: %v", status, errs)
	}
	sysMount, ok := data[mount+"/"].(map[string]any)
	if !ok {
		t.Fatalf("sys/mounts has no %s/: %v", mount, keys(data))
	}
	if got := str(t, sysMount, "running_plugin_version"); got != pluginVersion {
		t.Errorf("sys/mounts %s/ running_plugin_version = %q, want %q", mount, got, pluginVersion)
	}

	// Configure against the emulator; the secret is never read back.
	f.configure(t)
	cfgAnswer := v.MustCLIJSON(t, root, "read", mount+"/config")
	cfg := dataOf(t, cfgAnswer)
	if _, ok := cfg["client_secret"]; ok {
		t.Errorf("config read has a client_secret field")
	}
	assertNoSecret(t, "config read", cfgAnswer, mgmt.ClientSecret)
	if got := str(t, cfg, "domain"); got != emuURL {
		t.Errorf("config domain = %q, want %q", got, emuURL)
	}
	if got := str(t, cfg, "client_id"); got != mgmtClientID {
		t.Errorf("config client_id = %q, want %q", got, mgmtClientID)
	}

	// A role; no secret until the first rotation.
	f.createRole(t, "myapp", app.ClientID)
	role := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/myapp"))
	if got := str(t, role, "client_id"); got != app.ClientID {
		t.Errorf("role client_id = %q, want %q", got, app.ClientID)
	}
	status, _, errs = v.Request(t, root, http.MethodGet, mount+"/creds/myapp", nil)
	if status != http.StatusBadRequest {
		t.Errorf("creds before any rotation: status %d, want 400 (errors %v)", status, errs)
	}
	if msg := strings.Join(errs, " "); !strings.Contains(msg, "rotate") {
		t.Errorf("creds before any rotation: error %q does not say to rotate", msg)
	}
	if n := f.rotations(app.ClientID); n != 0 {
		t.Fatalf("emulator rotations before rotating = %d, want 0", n)
	}

	// Two rotations: versions 1 and 2, no secret in the answers.
	issued := []string{app.ClientSecret}
	var rotatedAt []time.Time
	for want := 1; want <= 2; want++ {
		answer := f.rotate(t, root, "myapp")
		current := f.secret(t, app.ClientID)
		for _, old := range issued {
			if current == old {
				t.Fatalf("rotation %d: the emulator's secret did not change", want)
			}
		}
		issued = append(issued, current)
		assertNoSecret(t, "rotate answer", answer, issued...)
		d := dataOf(t, answer)
		if got := num(t, d, "version"); got != want {
			t.Errorf("rotation %d: version = %d, want %d", want, got, want)
		}
		at := rfc3339(t, d, "last_vault_rotation")
		if since := time.Since(at); since < -time.Minute || since > time.Minute {
			t.Errorf("rotation %d: last_vault_rotation %v is not now", want, at)
		}
		// The role has no schedule: nothing to announce.
		if next, ok := d["next_vault_rotation"]; ok && next != "" && next != nil {
			t.Errorf("rotation %d: next_vault_rotation = %v for a role without a schedule", want, next)
		}
		rotatedAt = append(rotatedAt, at)
	}
	secretV1, secretV2 := issued[1], issued[2]

	// creds serves version 2, which Auth0 accepts; version 1 is refused.
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if got := num(t, creds, "version"); got != 2 {
		t.Errorf("creds version = %d, want 2", got)
	}
	if got := str(t, creds, "client_id"); got != app.ClientID {
		t.Errorf("creds client_id = %q, want %q", got, app.ClientID)
	}
	if got := str(t, creds, "domain"); got != emuURL {
		t.Errorf("creds domain = %q, want %q", got, emuURL)
	}
	if got := str(t, creds, "client_secret"); got != secretV2 {
		t.Errorf("creds client_secret is not the emulator's current secret")
	}
	if got := str(t, creds, "previous_client_secret"); got != secretV1 {
		t.Errorf("creds previous_client_secret is not the version-1 secret")
	}
	if got := rfc3339(t, creds, "last_vault_rotation"); !sameSecond(got, rotatedAt[1]) {
		t.Errorf("creds last_vault_rotation = %v, want the second rotation's %v", got, rotatedAt[1])
	}
	if code := authenticate(t, emuURL, app.ClientID, str(t, creds, "client_secret")); code != http.StatusOK {
		t.Errorf("authenticating with the version-2 secret: status %d, want 200", code)
	}
	if code := authenticate(t, emuURL, app.ClientID, str(t, creds, "previous_client_secret")); code != http.StatusUnauthorized {
		t.Errorf("authenticating with previous_client_secret: status %d, want 401", code)
	}

	v1 := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/myapp", "version=1"))
	if got := num(t, v1, "version"); got != 1 {
		t.Errorf("creds version=1: version = %d, want 1", got)
	}
	if got := str(t, v1, "client_secret"); got != secretV1 {
		t.Errorf("creds version=1: client_secret is not the secret of the first rotation")
	}
	if got := rfc3339(t, v1, "last_vault_rotation"); !sameSecond(got, rotatedAt[0]) {
		t.Errorf("creds version=1: last_vault_rotation = %v, want the first rotation's %v", got, rotatedAt[0])
	}
	if code := authenticate(t, emuURL, app.ClientID, secretV1); code != http.StatusUnauthorized {
		t.Errorf("authenticating with the version-1 secret: status %d, want 401", code)
	}
	// The same through the HTTP API's query parameter.
	status, data, errs = v.Request(t, root, http.MethodGet, mount+"/creds/myapp?version=1", nil)
	if status != http.StatusOK || data["client_secret"] != secretV1 {
		t.Errorf("GET creds/myapp?version=1: status %d, errors %v, served the version-1 secret: %v", status, errs, data["client_secret"] == secretV1)
	}

	// Version metadata, without secrets.
	versionsAnswer := v.MustCLIJSON(t, root, "read", mount+"/versions/myapp")
	assertNoSecret(t, "versions read", versionsAnswer, issued...)
	vers := dataOf(t, versionsAnswer)
	if got := num(t, vers, "current_version"); got != 2 {
		t.Errorf("versions current_version = %d, want 2", got)
	}
	if got := num(t, vers, "oldest_version"); got != 1 {
		t.Errorf("versions oldest_version = %d, want 1", got)
	}
	list, ok := vers["versions"].(map[string]any)
	if !ok || len(list) != 2 {
		t.Fatalf("versions.versions = %#v, want a map of versions 1 and 2", vers["versions"])
	}
	for i, key := range []string{"1", "2"} {
		meta, ok := list[key].(map[string]any)
		if !ok {
			t.Errorf("versions has no version %s: %v", key, keys(list))
			continue
		}
		if got := str(t, meta, "source"); got != "rotate" {
			t.Errorf("version %s source = %q, want rotate", key, got)
		}
		if got := rfc3339(t, meta, "created_time"); !sameSecond(got, rotatedAt[i]) {
			t.Errorf("version %s created_time = %v, want %v", key, got, rotatedAt[i])
		}
	}
	role = dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/myapp"))
	if got := num(t, role, "current_version"); got != 2 {
		t.Errorf("role current_version = %d, want 2", got)
	}

	if n := f.rotations(app.ClientID); n != 2 {
		t.Errorf("emulator rotations of %s = %d, want 2", app.ClientID, n)
	}
	if n := f.rotations(mgmtClientID); n != 0 {
		t.Errorf("emulator rotations of %s = %d, want 0", mgmtClientID, n)
	}
}
