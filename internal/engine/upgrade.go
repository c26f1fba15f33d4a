package engine

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// UpgradeRoleLocked moves a role written by v0.1.0 to the current layout
// (model.UpgradeLayout), writing its creds and claiming its application on the way, and
// logs the result. The caller holds the role's lock.
func (b *Engine) UpgradeRoleLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry) error {
	err := model.UpgradeLayout(ctx, s, name, role, b.Clock.Now(), model.LayoutSteps{
		WriteCreds: func(ctx context.Context, role *model.RoleEntry) error { return b.rewriteCreds(ctx, s, name, role) },
		Claim: func(ctx context.Context, clientID string) (string, error) {
			return b.claimApplication(ctx, s, name, clientID)
		},
	})
	if err != nil {
		return err
	}
	if role.Blocked != "" {
		b.logger().Error("role not rotated until its operator acts", "role", name, "client_id", role.ClientID, "reason", role.Blocked)
	}
	b.logger().Info("moved role to the current storage layout", "role", name, "layout", fmt.Sprint(model.RoleLayout), "versions", len(role.Versions))
	return nil
}
