package model

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// LayoutSteps are the parts of a layout upgrade that the engine performs: the model says
// what is stored where, the engine what creds serve and who owns an application.
type LayoutSteps struct {
	// WriteCreds writes creds/<name> anew from the role and its secret entries.
	WriteCreds func(ctx context.Context, role *RoleEntry) error
	// Claim claims the role's application for it, and answers the role (or OwnerConfig)
	// that owns it already, "" when the claim is the role's.
	Claim func(ctx context.Context, clientID string) (owner string, err error)
}

// UpgradeLayout moves a role written by v0.1.0 (layout 0: every secret inside the role
// entry) to the current layout: each secret into its own entry, what creds serves into
// creds/<name>, the application claimed for the role; then the role entry is rewritten
// without secrets, which is the commit point. A crash before it leaves the old entry, and
// the upgrade runs again from the start: every step is idempotent. A role that turns out
// to share its application with another, or with the mount's config, or whose stored
// schedule cannot fire at now, is marked blocked (Blocked says why), never rotated. The
// caller holds the role's lock; role is the upgraded role on return.
func UpgradeLayout(ctx context.Context, s logical.Storage, name string, role *RoleEntry, now time.Time, steps LayoutSteps) error {
	for _, v := range role.Versions {
		if v.LegacySecret == "" {
			continue
		}
		sec := &SecretEntry{Version: v.Version, Secret: v.LegacySecret, CreatedTime: v.CreatedTime, Source: v.Source}
		if err := SaveSecret(ctx, s, name, sec); err != nil {
			return err
		}
	}
	if err := steps.WriteCreds(ctx, role); err != nil {
		return err
	}
	owner, err := steps.Claim(ctx, role.ClientID)
	if err != nil {
		return err
	}

	next := role.Clone()
	next.Layout = RoleLayout
	for i, v := range next.Versions {
		cp := *v
		cp.LegacySecret = ""
		next.Versions[i] = &cp
	}
	if owner != "" {
		next.Blocked = OwnerBlocked(role.ClientID, owner)
	} else if problem := next.ScheduleProblem(now); problem != "" {
		next.Blocked = problem
	}
	if err := SaveRole(ctx, s, name, next); err != nil {
		return err
	}
	*role = *next
	return nil
}
