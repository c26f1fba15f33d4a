package auth0

import (
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

const auth0Recipe = "docs/recipes/terraform-auth0.md"

// recipeFeatures runs each feature of docs/recipes/terraform-auth0.md through the engine
// against an emulator whose Management API application holds the given scopes. A nil
// error means the feature works.
var recipeFeatures = map[string]func(e *testEnv) error{
	"rotate":          featureRotate,
	"read_secrets":    featureReadSecrets,
	"rotate_root":     featureRotateRoot,
	"private_key_jwt": featurePrivateKeyJWT,
}

// TestRecipeAuth0Scopes: every scope list of the Auth0 Terraform recipe is enough for its
// feature, and each of its scopes is needed (the feature fails without it).
func TestRecipeAuth0Scopes(t *testing.T) {
	scopes, grant := recipeScopes(t)
	if got, want := slices.Sorted(maps.Keys(scopes)), slices.Sorted(maps.Keys(recipeFeatures)); !slices.Equal(got, want) {
		t.Fatalf("the recipe lists features %v; this test runs %v", got, want)
	}
	if aud, _ := grant.Attr("audience"); aud.Kind != vaulttest.HCLString || aud.Str != "https://${var.auth0_domain}/api/v2/" {
		t.Errorf("auth0_client_grant audience = %+v, want the Management API audience https://${var.auth0_domain}/api/v2/", aud)
	}
	if sc, _ := grant.Attr("scopes"); !hclMentions(sc, "local.vault_auth0_scopes") || !hclMentions(sc, "local.vault_features") {
		t.Errorf("auth0_client_grant scopes do not come from local.vault_auth0_scopes and local.vault_features: %+v", sc)
	}

	for _, feature := range slices.Sorted(maps.Keys(scopes)) {
		list, run := scopes[feature], recipeFeatures[feature]
		t.Run(feature, func(t *testing.T) {
			t.Parallel()
			if err := run(newTestEnv(t, list...)); err != nil {
				t.Fatalf("with exactly %v: %v", list, err)
			}
			for i, dropped := range list {
				less := slices.Delete(slices.Clone(list), i, i+1)
				t.Run("without "+dropped, func(t *testing.T) {
					t.Parallel()
					err := run(newTestEnv(t, less...))
					if err == nil {
						t.Fatalf("works with %v: %s is not needed", less, dropped)
					}
					t.Logf("fails as it should: %v", err)
				})
			}
		})
	}
}

// recipeScopes reads local.vault_auth0_scopes and the auth0_client_grant of the recipe.
func recipeScopes(t *testing.T) (map[string][]string, *vaulttest.HCLBlock) {
	t.Helper()
	blocks := vaulttest.ParseHCL(t, vaulttest.Recipe(t, auth0Recipe, "terraform-auth0"))
	out := map[string][]string{}
	var grant *vaulttest.HCLBlock
	var features []string
	for _, b := range blocks {
		switch {
		case b.Type == "locals":
			m, ok := b.Attr("vault_auth0_scopes")
			if !ok || m.Kind != vaulttest.HCLObject {
				t.Fatal("locals has no vault_auth0_scopes object")
			}
			for _, f := range m.Attrs {
				if f.Value.Kind != vaulttest.HCLList || len(f.Value.List) == 0 {
					t.Fatalf("vault_auth0_scopes.%s is not a list of scopes", f.Name)
				}
				for _, s := range f.Value.List {
					if s.Kind != vaulttest.HCLString || s.Str == "" {
						t.Fatalf("vault_auth0_scopes.%s holds %+v, not a scope", f.Name, s)
					}
					if slices.Contains(out[f.Name], s.Str) {
						t.Fatalf("vault_auth0_scopes.%s lists %s twice", f.Name, s.Str)
					}
					out[f.Name] = append(out[f.Name], s.Str)
				}
			}
			if fs, ok := b.Attr("vault_features"); ok {
				for _, f := range fs.List {
					features = append(features, f.Str)
				}
			}
		case b.Type == "resource" && len(b.Labels) == 2 && b.Labels[0] == "auth0_client_grant":
			grant = b
		}
	}
	if len(out) == 0 || grant == nil {
		t.Fatalf("%s: no vault_auth0_scopes, or no auth0_client_grant", auth0Recipe)
	}
	for _, f := range features {
		if _, ok := out[f]; !ok {
			t.Errorf("vault_features names %q, which vault_auth0_scopes does not list", f)
		}
	}
	return out, grant
}

// hclMentions reports whether s appears in the raw text of e or of any expression in it.
func hclMentions(e vaulttest.HCLExpr, s string) bool {
	if strings.Contains(e.Raw, s) {
		return true
	}
	for _, x := range e.List {
		if hclMentions(x, s) {
			return true
		}
	}
	return false
}

// servesWorkingSecret checks that creds of role serve the secret Auth0 holds for clientID.
func (e *testEnv) servesWorkingSecret(role, clientID string) error {
	creds, err := e.try(logical.ReadOperation, "creds/"+role, nil)
	if err != nil {
		return err
	}
	if s, _ := creds["client_secret"].(string); s == "" || s != e.appSecret(clientID) || !e.authenticates(clientID, s) {
		return fmt.Errorf("creds/%s do not serve the secret Auth0 accepts", role)
	}
	return nil
}

// featureRotate: a role, an immediate rotation, a staged one, and a token minted with
// the rotated secret.
func featureRotate(e *testEnv) error {
	if err := e.tryConfigure(nil); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "token_audiences": testAPI}); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "rotate/app", nil); err != nil {
		return err
	}
	if err := e.servesWorkingSecret("app", testAppID); err != nil {
		return err
	}
	if tok, err := e.try(logical.ReadOperation, "token/app", nil); err != nil || tok["access_token"] == nil {
		return fmt.Errorf("token/app: %v, %v", tok != nil, err)
	}
	if _, err := e.try(logical.UpdateOperation, "roles/staged", map[string]interface{}{"client_id": testApp2ID, "rotation_strategy": "staged"}); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "rotate/staged", map[string]interface{}{"switch_now": true}); err != nil {
		return err
	}
	if st := e.emu.Stats(); st.Rotations[testAppID] != 1 || st.SecretPatches[testApp2ID] != 1 {
		return fmt.Errorf("Auth0 saw %d rotations of %s and %d secret changes of %s, want 1 and 1", st.Rotations[testAppID], testAppID, st.SecretPatches[testApp2ID], testApp2ID)
	}
	return e.servesWorkingSecret("staged", testApp2ID)
}

// featureReadSecrets: import of the current secret, exact recovery of a rotation whose
// answer was lost (one Auth0 rotation, read back), and the read-back check of a staged
// switch.
func featureReadSecrets(e *testEnv) error {
	if err := e.tryConfigure(map[string]interface{}{"request_timeout": "1s"}); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true}); err != nil {
		return err
	}
	if err := e.servesWorkingSecret("app", testAppID); err != nil {
		return err
	}
	var fired atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.AfterApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") && fired.CompareAndSwap(false, true) {
			return &emulator.Fault{Status: http.StatusInternalServerError}
		}
		return nil
	})
	_, err := e.try(logical.UpdateOperation, "rotate/app", nil)
	e.emu.SetFaults(nil)
	if err != nil {
		return err
	}
	if n := e.emu.Stats().Rotations[testAppID]; !fired.Load() || n != 1 {
		return fmt.Errorf("lost answer: Auth0 saw %d rotations (fault fired: %v), want exactly 1 read back", n, fired.Load())
	}
	if err := e.servesWorkingSecret("app", testAppID); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "roles/staged", map[string]interface{}{"client_id": testApp2ID, "rotation_strategy": "staged", "import_current_secret": true}); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "rotate/staged", map[string]interface{}{"switch_now": true}); err != nil {
		return err
	}
	v, err := e.try(logical.ReadOperation, "versions/staged", nil)
	if err != nil {
		return err
	}
	if got := v["versions"].(map[string]interface{})["2"].(map[string]interface{})["verified"]; got != model.VerifiedReadBack {
		return fmt.Errorf("the staged switch was verified by %v, want %s", got, model.VerifiedReadBack)
	}
	return e.servesWorkingSecret("staged", testApp2ID)
}

// featureRotateRoot: config/rotate-root, after which the engine still reaches Auth0.
func featureRotateRoot(e *testEnv) error {
	if err := e.tryConfigure(nil); err != nil {
		return err
	}
	old := e.mgmtSecret()
	if _, err := e.try(logical.UpdateOperation, "config/rotate-root", nil); err != nil {
		return err
	}
	if cur := e.mgmtSecret(); cur == old || e.storedConfig().ClientSecret != cur || !e.mgmtAuthenticates(cur) {
		return errors.New("after rotate-root the stored secret is not the new one Auth0 accepts")
	}
	return nil
}

// featurePrivateKeyJWT: a private_key_jwt role switches its application over with a first
// key, then rotates to a second, detaching and deleting the first at once.
func featurePrivateKeyJWT(e *testEnv) error {
	if err := e.tryConfigure(map[string]interface{}{"propagation_wait": 0}); err != nil {
		return err
	}
	if _, err := e.try(logical.UpdateOperation, "roles/app", map[string]interface{}{
		"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true, "overlap_period": 0,
	}); err != nil {
		return err
	}
	for v := 1; v <= 2; v++ {
		if _, err := e.try(logical.UpdateOperation, "rotate/app", nil); err != nil {
			return err
		}
		creds, err := e.try(logical.ReadOperation, "creds/app", nil)
		if err != nil {
			return err
		}
		key, _ := creds["private_key"].(string)
		kid, _ := creds["kid"].(string)
		alg, _ := creds["algorithm"].(string)
		if creds["version"] != v || key == "" || !e.keyLogsIn(testAppID, key, kid, alg) {
			return fmt.Errorf("after rotation %d: creds serve version %v, and its key does not log in", v, creds["version"])
		}
	}
	role, err := e.try(logical.ReadOperation, "roles/app", nil)
	if err != nil {
		return err
	}
	if f := role["last_rotation_failure"]; f != nil {
		return fmt.Errorf("role records a failure: %v", f)
	}
	if stored, attached := e.credentialIDs(testAppID); len(stored) != 1 || len(attached) != 1 {
		return fmt.Errorf("Auth0 holds credentials %v (attached %v), want only the current key", stored, attached)
	}
	return nil
}
