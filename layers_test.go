package auth0

import (
	"os/exec"
	"strings"
	"testing"
)

const modulePath = "github.com/vault-plugin-auth0/vault-plugin-auth0"

// packageLayers places every package of the module in a layer. A package may import
// (in its code and in its tests) only packages of a lower layer: the compiler then holds
// each layer to its place (docs/ARCHITECTURE.md). A new package must be placed here.
var packageLayers = map[string]int{
	// Layer 0: depends on nothing of the module. The clock, and what tests and tools
	// build on: the Auth0 emulator, a real Vault's harness, consumer models, the OpenAPI
	// document writer, the no-op plugin of the benchmarks.
	"internal/clock":      0,
	"internal/metrics":    0,
	"emulator":            0,
	"internal/vaulttest":  0,
	"internal/consumers":  0,
	"internal/apidoc":     0,
	"internal/noopplugin": 0,
	// Layer 1: the Auth0 side: the Management API, token and assertion clients, egress
	// rules, the rate limiter, and every classification of an Auth0 error.
	"internal/auth0api": 1,
	// Layer 2: the model and its storage layout: roles, config, creds, versions, owners,
	// the due index.
	"internal/model": 2,
	// Layer 3: the engine: the job path, write-ahead entries and recovery, the scheduler
	// and its queue, the caches, the credential kinds.
	"internal/engine": 3,
	// Layer 4: the path handlers (the root package).
	".": 4,
	// Layer 5: the programs, and the tests that run them.
	"cmd/vault-plugin-auth0": 5,
	"cmd/auth0-emulator":     5,
	"cmd/apidoc":             5,
	"integration":            5,
}

// TestPackageLayers: no package imports one of its own layer or above, and every package
// of the module has a layer.
func TestPackageLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}},{{join .TestImports ","}},{{join .XTestImports ","}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	rel := func(path string) (string, bool) {
		switch {
		case path == modulePath:
			return ".", true
		case strings.HasPrefix(path, modulePath+"/"):
			return strings.TrimPrefix(path, modulePath+"/"), true
		}
		return "", false
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkgPath, imports, _ := strings.Cut(line, "|")
		pkg, _ := rel(pkgPath)
		layer, ok := packageLayers[pkg]
		if !ok {
			t.Errorf("package %s has no layer: place it in packageLayers (layers_test.go) and docs/ARCHITECTURE.md", pkg)
			continue
		}
		seen++
		for _, imp := range strings.Split(imports, ",") {
			dep, inModule := rel(imp)
			if !inModule || dep == pkg {
				continue // outside the module, or an external test of the package itself
			}
			if l, ok := packageLayers[dep]; !ok || l >= layer {
				t.Errorf("package %s (layer %d) imports %s (layer %d): a package may import only packages of a lower layer", pkg, layer, dep, l)
			}
		}
	}
	if seen != len(packageLayers) {
		t.Errorf("go list listed %d of the %d placed packages: a placed package is gone; remove it from packageLayers", seen, len(packageLayers))
	}
}
