package auth0

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
)

func pathCheck(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "config/check",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "auth0",
			OperationVerb:   "check",
			OperationSuffix: "configuration",
		},
		Fields: map[string]*framework.FieldSchema{
			"roles": {
				Type:        framework.TypeCommaStringSlice,
				Description: fmt.Sprintf("Roles to check, comma separated. Default: every role of the mount. At most %d are checked in one read.", engine.CheckRolesLimit),
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:    b.pathCheckRead,
				Summary:     "Check the mount against Auth0 before production: scopes, rate limit, clock, audience, roles. Changes nothing.",
				Description: pathCheckHelpDesc,
				Responses:   checkResponses,
			},
		},
		HelpSynopsis:    pathCheckHelpSyn,
		HelpDescription: pathCheckHelpDesc,
	}}
}

func (b *backend) pathCheckRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	var only []string
	for _, name := range d.Get("roles").([]string) {
		if name = strings.ToLower(strings.TrimSpace(name)); name != "" && !slices.Contains(only, name) {
			only = append(only, name)
		}
	}
	c, resp, err := b.CheckConfig(ctx, req.Storage, only)
	if resp != nil || err != nil {
		return resp, err
	}
	features := map[string]interface{}{}
	for name, f := range c.Scopes.Features {
		features[name] = map[string]interface{}{"ok": f.OK, "missing": f.Missing, "required": f.Required}
	}
	scopes := map[string]interface{}{"granted": orEmpty(c.Scopes.Granted), "unneeded": orEmpty(c.Scopes.Unneeded), "features": features}
	if c.Scopes.Error != "" {
		scopes["error"] = c.Scopes.Error
	}
	rate := map[string]interface{}{"ok": !c.RateLimit.AboveTenant && c.RateLimit.Error == "", "configured": c.RateLimit.Configured, "observed": c.RateLimit.Observed}
	if c.RateLimit.Observed {
		rate["tenant_limit"], rate["tenant_remaining"] = c.RateLimit.Tenant.Limit, c.RateLimit.Tenant.Remaining
		rate["above_tenant_limit"] = c.RateLimit.AboveTenant
		engine.AddTime(rate, "tenant_reset", c.RateLimit.Tenant.Reset)
	}
	if c.RateLimit.Error != "" {
		rate["error"] = c.RateLimit.Error
	}
	a := c.Audience
	audience := map[string]interface{}{"ok": len(a.Problems) == 0, "domain": a.Domain, "audience": a.Audience, "default": a.Default,
		"canonical_domain": a.CanonicalDomain, "problems": a.Problems}
	if a.AcceptedKnown {
		audience["accepted"] = a.Accepted
	}
	roles := map[string]interface{}{}
	for name, r := range c.Roles {
		role := map[string]interface{}{"ok": len(r.Problems) == 0, "problems": r.Problems}
		if r.ClientID != "" {
			role["client_id"], role["credential_type"] = r.ClientID, r.CredentialType
			if r.RotationStrategy != "" {
				role["rotation_strategy"] = r.RotationStrategy
			}
		}
		roles[name] = role
	}
	data := map[string]interface{}{
		"ok": c.OK, "scopes": scopes, "rate_limit": rate, "audience": audience, "roles": roles, "roles_total": c.RolesTotal,
	}
	if c.ClockSkewKnown {
		data["clock_skew_seconds"] = int64(math.Round(c.ClockSkew.Seconds()))
	}
	// Each warning is made, and documented, where the engine found the problem.
	return &logical.Response{Data: data, Warnings: c.Warnings}, nil
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// checkResponses documents a check's answer (OpenAPI, docs/API.md); it holds no secret.
var checkResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"ok": {Type: framework.TypeBool, Description: "Whether the check found no problem; each problem is also a warning that says what to do."},
		"scopes": {Type: framework.TypeMap, Description: "The Management API token's scopes: granted (read from a token obtained for the check, so those granted now), unneeded (granted, used by no feature), " +
			"features (per feature: ok, missing, the scopes to grant, and required, whether this mount's config or roles use it), and error when no token was obtained."},
		"rate_limit":         {Type: framework.TypeMap, Description: "The tenant's Management API rate limit from the x-ratelimit-* headers of Auth0's answer (tenant_limit, tenant_remaining, tenant_reset; observed is false without them) against configured, the mount's rate_limit: ok, above_tenant_limit; error when Auth0 did not answer."},
		"clock_skew_seconds": {Type: framework.TypeInt64, Description: "How many seconds Vault's clock is ahead of Auth0's (negative: behind), from the Date of Auth0's answer; 0 within its one-second resolution. Absent when Auth0 sent no Date."},
		"audience":           {Type: framework.TypeMap, Description: "The Management API audience against the domain: ok, domain, audience, default (whether it is derived from domain), canonical_domain (whether domain is an Auth0 tenant domain, not a custom one), accepted (whether Auth0 issued a token for it), problems."},
		"roles":              {Type: framework.TypeMap, Description: "Per role checked: ok, problems, client_id, credential_type, rotation_strategy."},
		"roles_total":        {Type: framework.TypeInt, Description: "How many roles the mount has."},
	},
}}}

const pathCheckHelpSyn = `Check the mount against Auth0 before production, changing nothing.`

const pathCheckHelpDesc = `
Reads what an operator needs to know before production, and changes nothing: no storage
write, no rotation, no change at Auth0. It costs one Management API token request, one
Management API read, and one read per role checked, paced by rate_limit. A policy needs
read on <mount>/config/check:

  path "auth0/config/check" { capabilities = ["read"] }

It answers, with ok true when it found no problem, and a warning per problem that says
what to do:

  scopes              the scopes of a Management API token obtained for the check (the
                      ones Auth0 grants now, read from the token itself), and per feature
                      whether they suffice or which scopes to grant (missing), and whether
                      the mount's config or roles need the feature (required; a missing
                      scope of a required feature is a problem):
                        rotate               read:clients, update:client_keys (required
                                             with client_secret roles, or no role yet)
                        import               read:client_keys (import_current_secret)
                        recovery             read:client_keys (a lost rotate-secret answer
                                             is read back; without it, rotated again)
                        staged_verification  read:client_keys (a staged switch is read
                                             back; without it, checked with a token)
                        keys                 read:clients, update:clients,
                                             create:, read:, update:, delete:client_credentials
                                             (required with private_key_jwt or
                                             self_signed_tls_client_auth roles)
                        root                 update:client_keys, or the keys' scopes for a
                                             mount on private_key_jwt (required with
                                             root_rotation_period or such a mount)
                        drift                read:client_keys for client_secret roles,
                                             read:client_credentials for the others
                                             (required with drift_check_period on and a
                                             role to check)
                      Auth0 lets read:client_keys stand for read:clients, update:client_keys
                      for update:clients, and read:client_credentials read secrets too.
  rate_limit          the tenant's Management API bucket as Auth0's answer reports it
                      (x-ratelimit-limit, -remaining, -reset) against rate_limit; a
                      rate_limit above x-ratelimit-limit is a problem
  clock_skew_seconds  Vault's clock against the Date of Auth0's answer; more than 5
                      seconds either way is a problem (Auth0 allows a private_key_jwt
                      assertion 10 seconds of skew)
  audience            the audience against the domain: a custom domain needs audience set
                      to the Management API identifier of the canonical tenant domain
                      (https://<tenant>.<region>.auth0.com/api/v2/)
  roles               per role (roles=a,b, or every role; at most 25 per read): whether its
                      application exists at Auth0, whether the application authenticates
                      the way the role rotates (a client secret for client_secret roles;
                      private_key_jwt or self_signed_tls_client_auth, or
                      allow_auth_method_change=true, for the others), and whether its
                      schedule fits stage_period, overlap_period and certificate_ttl

Failures to reach Auth0 are part of the answer. Without config the read is refused: write
config first.
`
