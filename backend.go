// Package auth0 is a Vault secrets engine that owns Auth0 application client secrets:
// it rotates them through Auth0's Management API, keeps every rotation as a version and
// serves the current one to whatever Vault policy allows.
package auth0

import (
	"context"
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
	*Engine
}

// Setup is framework.Backend's, and also takes the mount's identity from conf.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.mountTag = mountTag(conf.BackendUUID)
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
	b.Engine = newEngine(clk, b, Version)
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{
				configStoragePath,
				credsStoragePrefix,
				secretStoragePrefix,
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
		),
		InitializeFunc:    b.initialize,
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
		RunningVersion:    Version,
	}
	return b
}

func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStoragePath:
		b.resetConnection()
	case strings.HasPrefix(key, roleStoragePrefix):
		b.tokens.dropRole(strings.TrimPrefix(key, roleStoragePrefix))
	case strings.HasPrefix(key, credsStoragePrefix):
		name := strings.TrimPrefix(key, credsStoragePrefix)
		b.credsCache.invalidate(name)
		b.tokens.dropRole(name)
	}
}

// clean runs when the mount is unmounted, sealed or reloaded. It cancels the backend's
// context first: rate-limit waits end, so a request not yet sent is abandoned, and one
// already sent is cut off and leaves its write-ahead entry for reconciliation. Then it
// waits a bounded time for the scheduler's workers.
func (b *backend) clean(context.Context) {
	b.cancel()
	b.stopScheduler()
	b.resetConnection()
}

// HandleRequest is framework.Backend's, with the panic boundary.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (resp *logical.Response, err error) {
	defer func() {
		if recover() != nil {
			b.logPanic("request", "path", req.Path, "operation", req.Operation)
			resp, err = nil, logical.CodedError(http.StatusInternalServerError, panicMessage)
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
