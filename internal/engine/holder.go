package engine

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"strconv"

	"github.com/hashicorp/vault/sdk/logical"
)

// credentialHolder is where a job keeps the state of the credential it changes: a role's
// entries (roles/<name>, creds/<name>), or the config for the mount's own Management API
// credentials (rootkey.go). The protocol that changes a credential at Auth0 (intent
// stored, Auth0 called, the outcome read back or resolved, committed) is the job's and is
// written once (runAttached for the kinds that attach credentials); the holder only says
// where its state and its commits go.
type credentialHolder interface {
	// describe names the holder in messages: `role "app"`, or the Management API
	// application.
	describe() string
	// storeState stores next as the holder's state: no new version.
	storeState(ctx context.Context, next *model.RoleEntry) error
	// CommitVersion stores next, whose new current version creds.Current holds, as one
	// commit, and then makes role next.
	CommitVersion(ctx context.Context, role, next *model.RoleEntry, creds *model.CredsEntry, prune bool) error
}

// roleHolder keeps a role's state in its entries.
type roleHolder struct {
	b    *Engine
	s    logical.Storage
	name string
}

func (h roleHolder) describe() string { return "role " + strconv.Quote(h.name) }

func (h roleHolder) storeState(ctx context.Context, next *model.RoleEntry) error {
	return h.b.StoreRoleState(ctx, h.s, h.name, next)
}

func (h roleHolder) CommitVersion(ctx context.Context, role, next *model.RoleEntry, creds *model.CredsEntry, prune bool) error {
	return h.b.storeVersion(ctx, h.s, h.name, role, next, creds, prune)
}

// holder is where the job keeps its state: a role's entries unless it was given another.
func (j *roleJob) holder() credentialHolder {
	if j.hold != nil {
		return j.hold
	}
	return roleHolder{b: j.b, s: j.s, name: j.name}
}
