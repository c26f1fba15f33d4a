// Command noopplugin is a benchmark reference, never shipped: a Vault secrets plugin whose
// only path, creds/<name>, answers a constant map shaped like vault-plugin-auth0's creds
// without touching storage. Its throughput in a real Vault is the ceiling of any external
// plugin (the gRPC hop from Vault to the plugin and back); `make bench` measures creds
// against it.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// answer has the fields and sizes of a creds answer of a scheduled client_secret role.
var answer = map[string]interface{}{
	"client_id":              "bench-app",
	"client_secret":          "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
	"previous_client_secret": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
	"domain":                 "127.0.0.1:8091",
	"version":                2,
	"last_vault_rotation":    "2026-01-01T00:00:00Z",
	"rotation_period":        int64(2592000),
	"next_vault_rotation":    "2026-01-31T00:00:00Z",
	"ttl":                    int64(2592000),
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "creds/" + framework.GenericNameRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeLowerCaseString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return &logical.Response{Data: answer}, nil
				}},
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
