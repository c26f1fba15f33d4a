// Command kv-v2-external serves HashiCorp's KV secrets engine (vault-plugin-secrets-kv
// v0.25.0) as an external plugin, always in its version 2 (versioned) mode: Vault 1.13
// accepts the version=2 mount option only for the built-in kv type. It sends no events (see
// factory). It is the reference
// `make bench` measures creds against; it lives in a module of its own, so that its
// dependencies stay out of the plugin's.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	cfg := make(map[string]string, len(conf.Config)+1)
	for k, v := range conf.Config {
		cfg[k] = v
	}
	cfg["version"] = "2"
	conf.Config = cfg
	// KV v0.25.0 sends an event on every write; Vault 1.13's events server (events were
	// experimental then) dereferences a nil sender and crashes the server. Without a sender
	// KV skips its events.
	conf.EventsSender = nil
	return kv.Factory(ctx, conf)
}

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
