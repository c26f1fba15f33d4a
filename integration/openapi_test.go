package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	auth0 "github.com/vault-plugin-auth0/vault-plugin-auth0"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/apidoc"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The OpenAPI document Vault itself serves for the mount describes every path, operation
// and field, and renders exactly the committed docs/API.md.
func TestOpenAPISpecServedByVault(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.v.Do(t, f.v.RootToken, http.MethodGet, "sys/internal/specs/openapi", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("sys/internal/specs/openapi: %d %v", r.Status, r.Errors)
	}
	served, err := apidoc.Parse(r.Raw)
	if err != nil {
		t.Fatal(err)
	}

	// Vault 1.13 decodes an external plugin's document without its "$ref"s
	// (hashicorp/vault#30714) but keeps the schemas they name: put the names back from
	// the plugin's own document, and render only what Vault served.
	own, err := apidoc.Spec(context.Background(), auth0.Factory)
	if err != nil {
		t.Fatal(err)
	}
	restored := apidoc.Relink(served, own)
	t.Logf("restored %d schema references Vault dropped", len(restored))

	for _, p := range apidoc.Problems(served, apidoc.Mount) {
		t.Errorf("Vault's document: %s", p)
	}
	md, err := apidoc.Markdown(served, apidoc.Mount)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(t), "docs", "API.md"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := apidoc.FirstDifference(committed, md); diff != "" {
		t.Fatalf("the reference rendered from Vault's document is not docs/API.md (stale, or Vault drops something):\n%s", diff)
	}
}
