# vault-plugin-auth0 — run `make help` for the targets.
SHELL := /bin/bash

VERSION     ?= v0.2.0-dev
MODULE      := github.com/vault-plugin-auth0/vault-plugin-auth0
PLUGIN_NAME := vault-plugin-auth0
BIN         := $(CURDIR)/bin
PLUGIN_DIR  := $(BIN)/plugins
LDFLAGS     := -X $(MODULE).Version=$(VERSION)
GO_SOURCES  := $(shell find . -name '*.go' -not -path './tools/*' -not -path './.dev/*')
# VAULT_BIN=/path/to/vault runs make dev and make test on an installed Vault instead of
# building 1.13.2 from source (tested: 1.13.2; see the README).
VAULT_BIN   ?=
export VAULT_BIN
VAULT       := $(or $(VAULT_BIN),$(BIN)/vault)
VAULT_DEP   := $(if $(VAULT_BIN),,vault)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: $(PLUGIN_DIR)/$(PLUGIN_NAME) $(BIN)/auth0-emulator ## Build the plugin and the Auth0 emulator into bin/

$(PLUGIN_DIR)/$(PLUGIN_NAME): $(GO_SOURCES) go.mod go.sum
	go build -ldflags "$(LDFLAGS)" -o $@ ./cmd/$(PLUGIN_NAME)

$(BIN)/auth0-emulator: $(GO_SOURCES) go.mod go.sum
	go build -o $@ ./cmd/auth0-emulator

.PHONY: docs
docs: ## Regenerate docs/API.md, the API reference, from the engine's OpenAPI document (a test fails when it is stale)
	go run ./cmd/apidoc -o docs/API.md

.PHONY: vault
vault: $(BIN)/vault ## Build MPL Vault 1.13.2 from tools/vault into bin/vault (once: ~15 min cold, ~40 s with a warm Go cache)

# Vault is built in its own module so its dependency graph never touches the plugin's go.mod.
$(BIN)/vault: tools/vault/go.mod tools/vault/go.sum
	@echo "==> Building Vault 1.13.2 from source into bin/vault, once."
	@echo "    Why: make test and make dev run the plugin in a real Vault server, and 1.13.2 is the newest"
	@echo "    MPL release that builds here (later ones are under the BSL). Later runs reuse bin/vault."
	@echo "    How long: about 10-15 minutes on a fresh 2-core machine (module downloads, cold build);"
	@echo "    about 40 s with a warm Go cache."
	@echo "    Skip it: VAULT_BIN=/path/to/vault make $(or $(MAKECMDGOALS),vault) runs on an installed Vault (tested: 1.13.2)."
	cd tools/vault && go build -o $@ github.com/hashicorp/vault
	@echo "==> bin/vault built."

.PHONY: dev
dev: build $(VAULT_DEP) ## Start Vault dev server + Auth0 emulator (AUTH0_PLAN=free|essentials|professional|enterprise|"", PROPAGATION_DELAY=30s, VAULT_BIN=installed vault) with the plugin at auth0/ (Ctrl-C stops)
	@$(VAULT) version
	VERSION=$(VERSION) VAULT_BIN=$(VAULT) ./scripts/dev.sh

.PHONY: test
test: $(VAULT_DEP) ## Run every test: go vet, make vulncheck, unit tests (fuzz corpus included), integration tests against a real Vault, the API simulation under -race, the Kubernetes recipes against their consumers' CRD schemas (tools/crds), and the benchmark charts' parser (tools/benchcharts) (VAULT_BIN=installed vault to skip the build)
	@$(VAULT) version
	go vet ./...
	./scripts/vulncheck.sh
	go test -count=1 -timeout 40m -skip 'TestAPISimulation$$' ./...
	go test -count=1 -race -run 'TestAPISimulation$$' .
	cd tools/crds && go vet ./... && go test -count=1 ./...
	cd tools/benchcharts && go vet ./... && go test -count=1 ./...

.PHONY: planted
planted: ## Show that the simulations catch planted defects: each patch of testdata/planted (TestSimulation) and testdata/planted-api (TestAPISimulation, -race) applied to a copy
	./scripts/planted.sh
	./scripts/planted-api.sh

FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Fuzz each native Go fuzz target for FUZZTIME (default 30s; FUZZ_TARGETS="FuzzX ..." picks some) in turn; a finding fails the run and stays in testdata/fuzz/<Target>/ as a regression (make test runs that corpus)
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

.PHONY: vulncheck
vulncheck: ## Fail on known vulnerabilities reachable from the plugin and emulator (govulncheck, offline DB from the x/vulndb pinned in tools/vulncheck, Go go1.27.3)
	./scripts/vulncheck.sh

.PHONY: bench
bench: vault bench-plugins ## Run the benchmarks (Go benchmarks and a load run against a real Vault); draws the run's charts into docs/bench/*.svg (tools/benchcharts)
	./scripts/bench.sh

# The newest raw output of make bench, unless BENCH_RESULTS names one.
BENCH_RESULTS ?= $(lastword $(sort $(wildcard bench-results/bench-*.txt)))

.PHONY: bench-charts
bench-charts: ## Draw docs/bench/*.svg again from a make bench run's raw output (BENCH_RESULTS=bench-results/bench-<time>.txt, default the newest) and print its tables
	@test -n "$(BENCH_RESULTS)" || { echo "bench-charts: no bench-results/bench-*.txt; run make bench first" >&2; exit 1; }
	cd tools/benchcharts && go build -o $(BIN)/benchcharts .
	$(BIN)/benchcharts -o docs/bench -links docs/bench $(BENCH_RESULTS)

.PHONY: bench-plugins
bench-plugins: $(BIN)/bench-plugins/vault-plugin-secrets-kv ## Build the benchmarks' reference plugins (HashiCorp KV v0.25.0, external) into bin/bench-plugins/

$(BIN)/bench-plugins/vault-plugin-secrets-kv: tools/kv/go.mod tools/kv/go.sum tools/kv/main.go
	cd tools/kv && go build -o $@ .

.PHONY: release
release: ## Build release binaries (linux/darwin, amd64/arm64, Go 1.27.3) and their launchers into dist/ with SHA256SUMS; builds twice and checks the bytes match (VERSION=vX.Y.Z)
	VERSION=$(VERSION) ./scripts/release.sh

.PHONY: clean
clean: ## Remove built binaries (keeps the cached bin/vault and the vulncheck tools and database)
	rm -rf $(PLUGIN_DIR) $(BIN)/auth0-emulator .dev dist
