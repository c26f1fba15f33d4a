// Package auth0 is a Vault secrets engine that owns Auth0 application client secrets:
// it rotates them through Auth0's Management API, keeps every rotation as a version and
// serves the current one to whatever Vault policy allows.
package auth0

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/vault-plugin-auth0/vault-plugin-auth0.Version=vX.Y.Z".
// Vault requires it to equal the -version the plugin is registered with.
var Version = "v0.0.0-dev"

// Factory returns a configured instance of the backend; Vault calls it once per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

type backend struct {
	*framework.Backend
	*engine.Engine
}

// Setup is framework.Backend's, and also takes the mount's identity from conf.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.MountTag = mountTag(conf.BackendUUID)
	return b.Backend.Setup(ctx, conf)
}

// mountTag is the first 8 characters of the mount's UUID ("mount" when Vault gives none).
func mountTag(uuid string) string {
	uuid = strings.ReplaceAll(uuid, "-", "")
	if len(uuid) < 8 {
		return "mount"
	}
	return uuid[:8]
}

func newBackend() *backend {
	return newBackendWithClock(clock.Real{})
}

func newBackendWithClock(clk clock.Clock) *backend {
	b := &backend{}
	b.Engine = engine.NewEngine(clk, b, Version)
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{
				model.ConfigStoragePath,
				model.CredsStoragePrefix,
				model.SecretStoragePrefix,
			},
			// A write-ahead entry belongs to the cluster whose rotation wrote it.
			LocalStorage: []string{
				framework.WALPrefix,
			},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathRoles(b),
			pathRotate(b),
			pathCreds(b),
			pathVersions(b),
			pathToken(b),
			pathStatus(b),
			pathMetrics(b),
			pathCheck(b),
		),
		InitializeFunc:    b.InitializeMount,
		WALRollback:       b.RollbackWAL,
		WALRollbackMinAge: engine.WALRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
		RunningVersion:    Version,
	}
	return b
}

func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == model.ConfigStoragePath:
		b.ResetConnection()
	case strings.HasPrefix(key, model.RoleStoragePrefix):
		b.Tokens.DropRole(strings.TrimPrefix(key, model.RoleStoragePrefix))
	case strings.HasPrefix(key, model.CredsStoragePrefix):
		name := strings.TrimPrefix(key, model.CredsStoragePrefix)
		b.CredsCache.Invalidate(name)
		b.Tokens.DropRole(name)
	}
}

// clean runs when the mount is unmounted, sealed or reloaded. It cancels the backend's
// context first: rate-limit waits end, so a request not yet sent is abandoned, and one
// already sent is cut off and leaves its write-ahead entry for reconciliation. Then it
// waits a bounded time for the scheduler's workers.
func (b *backend) clean(context.Context) {
	b.Cancel()
	b.StopScheduler()
	b.ResetConnection()
}

// HandleRequest is framework.Backend's, with the panic boundary.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (resp *logical.Response, err error) {
	defer func() {
		if recover() != nil {
			b.LogPanic("request", "path", req.Path, "operation", req.Operation)
			resp, err = nil, logical.CodedError(http.StatusInternalServerError, engine.PanicMessage)
		}
	}()
	return b.Backend.HandleRequest(ctx, req)
}

const backendHelp = `
The Auth0 secrets engine takes ownership of Auth0 application client secrets.

Configure the Management API connection at "config", bind a Vault role to an Auth0
application at "roles/<name>", rotate its secret with "rotate/<name>" and read the current
secret at "creds/<name>". Every rotation is kept as a version ("versions/<name>").
`
