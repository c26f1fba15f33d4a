package engine

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"

	"github.com/hashicorp/vault/sdk/logical"
)

// UpgradeRoleLocked moves a role written by v0.1.0 (layout 0: every secret inside the role
// entry) to the current layout: each secret into its own entry, what creds serves into
// creds/<name>, the application claimed for the role; then the role entry is rewritten
// without secrets, which is the commit point. A crash before it leaves the old entry, and
// the upgrade runs again from the start: every step is idempotent. A role that turns out
// to share its application with another, or with the mount's config, or whose stored
// schedule cannot fire, is marked blocked and reported, never rotated. The caller holds the
// role's lock.
func (b *Engine) UpgradeRoleLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	for _, v := range role.Versions {
		if v.LegacySecret == "" {
			continue
		}
		sec := &model.SecretEntry{Version: v.Version, Secret: v.LegacySecret, CreatedTime: v.CreatedTime, Source: v.Source}
		if err := model.SaveSecret(ctx, s, name, sec); err != nil {
			return err
		}
	}
	if err := b.rewriteCreds(ctx, s, name, role); err != nil {
		return err
	}
	owner, err := b.claimApplication(ctx, s, name, role.ClientID)
	if err != nil {
		return err
	}

	next := role.Clone()
	next.Layout = model.RoleLayout
	for i, v := range next.Versions {
		cp := *v
		cp.LegacySecret = ""
		next.Versions[i] = &cp
	}
	if owner != "" {
		next.Blocked = OwnerBlocked(role.ClientID, owner)
	} else if problem := next.ScheduleProblem(b.Clock.Now()); problem != "" {
		next.Blocked = problem
	}
	if err := model.SaveRole(ctx, s, name, next); err != nil {
		return err
	}
	*role = *next
	if role.Blocked != "" {
		b.logger().Error("role not rotated until its operator acts", "role", name, "client_id", role.ClientID, "reason", role.Blocked)
	}
	b.logger().Info("moved role to the current storage layout", "role", name, "layout", fmt.Sprint(model.RoleLayout), "versions", len(role.Versions))
	return nil
}
