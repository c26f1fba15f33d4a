package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// config/check answers what an operator needs to know before production, and changes
// nothing to find it: no storage write, no rotation, no change at Auth0. It costs one
// Management API token request, one Management API read, and one read per role checked,
// all paced by the mount's rate limiter like every other call.

// CheckRolesLimit bounds how many roles one check looks up at Auth0.
const CheckRolesLimit = 25

// grantScopesWhere is where an operator grants a Management API scope.
const grantScopesWhere = "in Auth0: Applications > APIs > Auth0 Management API > Machine to Machine Applications, the engine's application"

// Check is what config/check found. Every problem is a warning that says what to do, and
// makes OK false.
type Check struct {
	OK        bool
	Scopes    ScopesCheck
	RateLimit RateLimitCheck
	// ClockSkew is how far Vault's clock is ahead of Auth0's (negative: behind), known
	// when Auth0 answered with a Date.
	ClockSkew      time.Duration
	ClockSkewKnown bool
	Audience       AudienceCheck
	Roles          map[string]*RoleCheck
	// RolesTotal is how many roles the mount has.
	RolesTotal int
	Warnings   []string
}

// ScopesCheck is what the Management API token carries, against what each feature needs.
type ScopesCheck struct {
	// Granted are the token's scopes; Unneeded those of them no feature uses.
	Granted, Unneeded []string
	Features          map[string]FeatureCheck
	// Error says why the scopes are unknown; Features is empty then.
	Error string
}

// FeatureCheck is one feature: whether the scopes granted suffice, what to grant when not,
// and whether the mount's config and roles need the feature.
type FeatureCheck struct {
	OK       bool
	Missing  []string
	Required bool
}

// RateLimitCheck is the tenant's Management API rate limit, as Auth0's answer reports it,
// against the mount's rate_limit.
type RateLimitCheck struct {
	Configured float64
	// Observed is whether Auth0's answer carried x-ratelimit-* headers, Tenant what they said.
	Observed    bool
	Tenant      auth0api.RateLimitState
	AboveTenant bool
	// Error says why no Management API answer arrived.
	Error string
}

// AudienceCheck is the Management API audience against the domain.
type AudienceCheck struct {
	Domain, Audience string
	// Default is whether the audience is the default one, derived from the domain.
	Default bool
	// CanonicalDomain is whether the domain is one of Auth0's own (*.auth0.com).
	CanonicalDomain bool
	// Accepted is whether Auth0 issued a token for the audience; known when it answered.
	Accepted, AcceptedKnown bool
	Problems                []string
}

// RoleCheck is one role: its application at Auth0, and its settings.
type RoleCheck struct {
	ClientID, CredentialType, RotationStrategy string
	Problems                                   []string
}

// problem records a problem of the check: a warning that says what to do, and OK false.
func (c *Check) problem(problem string) { c.record(problem) }

// failed records what Auth0Failure made of a failure to reach Auth0 as a problem: its
// messages are documented where Auth0Failure makes them.
func (c *Check) failed(resp *logical.Response, err error) string {
	text := failureText(resp, err)
	c.record(text)
	return text
}

func (c *Check) record(text string) {
	c.Warnings = append(c.Warnings, text)
	c.OK = false
}

// checkFeature is one feature of the engine and the Management API permissions it needs.
type checkFeature struct {
	name string
	// what names the feature in messages.
	what     string
	needs    func(cfg *model.ConfigEntry, u mountUse) []auth0api.Need
	required func(u mountUse) bool
}

// mountUse is what the mount's config and roles use.
type mountUse struct {
	roles, secretRoles, attachingRoles int
	rootRotation, drift                bool
}

// attachingNeeds are the needs of the kinds that attach credentials (runAttached): read
// the application, register, list, attach and detach, delete.
var attachingNeeds = []auth0api.Need{auth0api.NeedReadClient, auth0api.NeedUpdateClient, auth0api.NeedCreateCredential,
	auth0api.NeedReadCredentials, auth0api.NeedAttachCredentials, auth0api.NeedDeleteCredential}

func needs(n ...auth0api.Need) func(*model.ConfigEntry, mountUse) []auth0api.Need {
	return func(*model.ConfigEntry, mountUse) []auth0api.Need { return n }
}

// driftNeeds are what the drift checks of the mount's roles read: secrets for the secret
// kinds, the attached credentials for the others; both while there is no role yet.
func driftNeeds(_ *model.ConfigEntry, u mountUse) []auth0api.Need {
	n := []auth0api.Need{auth0api.NeedReadClient}
	if u.secretRoles > 0 || u.roles == 0 {
		n = append(n, auth0api.NeedReadSecret)
	}
	if u.attachingRoles > 0 || u.roles == 0 {
		n = append(n, auth0api.NeedReadCredentials)
	}
	return n
}

func never(mountUse) bool { return false }

// checkFeatures are the features config/check reports, in its order. import, recovery
// and staged_verification are never required: without them the engine works (recovery
// rotates again, a staged switch is verified with a token). drift is required while
// drift_check_period is on and there are roles to check: without its scopes the checks
// are skipped (secrets) or fail (credentials), and the operator should know before.
var checkFeatures = []checkFeature{
	{name: "rotate", what: "binding roles and rotating client secrets (rotate-secret, and the staged switch's PATCH)",
		needs: needs(auth0api.NeedReadClient, auth0api.NeedChangeSecret), required: func(u mountUse) bool { return u.roles == 0 || u.secretRoles > 0 }},
	{name: "import", what: "import_current_secret",
		needs: needs(auth0api.NeedReadClient, auth0api.NeedReadSecret), required: never},
	{name: "recovery", what: "reading a secret back after a lost rotate-secret answer, instead of rotating again",
		needs: needs(auth0api.NeedReadClient, auth0api.NeedReadSecret), required: never},
	{name: "staged_verification", what: "reading a staged secret back after its switch, instead of checking it with a token",
		needs: needs(auth0api.NeedReadClient, auth0api.NeedReadSecret), required: never},
	{name: "keys", what: "private_key_jwt and self_signed_tls_client_auth roles",
		needs: needs(attachingNeeds...), required: func(u mountUse) bool { return u.attachingRoles > 0 }},
	{name: "root", what: "config/rotate-root and root_rotation_period",
		needs: func(cfg *model.ConfigEntry, _ mountUse) []auth0api.Need {
			if cfg.UsesKey() {
				return attachingNeeds // the mount's own key rotates as a key role's does
			}
			return []auth0api.Need{auth0api.NeedChangeSecret}
		},
		required: func(u mountUse) bool { return u.rootRotation }},
	{name: "drift", what: "drift detection (reading secrets and credentials back)",
		needs: driftNeeds, required: func(u mountUse) bool { return u.drift && u.roles > 0 }},
}

// CheckFeatureNames are the features config/check reports, in its order.
func CheckFeatureNames() []string {
	names := make([]string, 0, len(checkFeatures))
	for _, f := range checkFeatures {
		names = append(names, f.name)
	}
	return names
}

// CheckConfig runs config/check for the roles named in only (all roles when empty, up to
// CheckRolesLimit either way). Without config it answers an error response. Failures
// reaching Auth0 are part of the Check; err is for storage.
func (b *Engine) CheckConfig(ctx context.Context, s logical.Storage, only []string) (*Check, *logical.Response, error) {
	conn, resp, err := b.RequireConnection(ctx, s)
	if resp != nil || err != nil {
		return nil, resp, err
	}
	cfg := conn.Config
	roles, use, err := loadRolesForCheck(ctx, s, cfg)
	if err != nil {
		return nil, nil, err
	}
	c := &Check{OK: true, RolesTotal: len(roles), Roles: map[string]*RoleCheck{}}

	claims, tokenErr := auth0api.GrantedScopes(ctx, b.SettingsOf(cfg))
	c.checkScopes(cfg, use, claims, tokenErr)
	c.checkAudience(cfg, tokenErr)

	skip := lookUp
	c.RateLimit.Configured = cfg.RateLimitOrDefault()
	switch {
	case tokenErr != nil && !errors.Is(tokenErr, auth0api.ErrNotJWT):
		c.RateLimit.Error = "not checked: the engine could not obtain a Management API token"
		skip = skipNoToken
	default:
		answer, err := conn.Client.Observe(ctx, cfg.ClientID)
		c.checkRateLimit(answer, err)
		c.checkClock(answer)
		if answer == nil {
			skip = skipNoAnswer
		} else if claims != nil && !auth0api.NeedReadClient.MetBy(claims.Scopes) {
			skip = skipNoRead
		}
	}
	b.checkRoles(ctx, c, conn, roles, only, skip)
	return c, nil, nil
}

// auth0Skip is why roles' applications are not looked up at Auth0, if they are not.
type auth0Skip int

const (
	lookUp auth0Skip = iota
	skipNoToken
	skipNoAnswer
	skipNoRead
)

// reason is the problem a role not looked up at Auth0 has.
func (s auth0Skip) reason() string {
	switch s {
	case skipNoToken:
		return "its application was not checked at Auth0: the engine could not obtain a Management API token; fix what the check says of it, then check again"
	case skipNoAnswer:
		return "its application was not checked at Auth0, which did not answer (see rate_limit); check again once it does"
	case skipNoRead:
		return fmt.Sprintf("its application was not checked at Auth0: the Management API application may not read applications; grant %s to it %s", auth0api.NeedReadClient[0], grantScopesWhere)
	}
	return ""
}

// loadRolesForCheck reads every role, and what the mount uses.
func loadRolesForCheck(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry) (map[string]*model.RoleEntry, mountUse, error) {
	use := mountUse{rootRotation: cfg.RootRotationPeriod > 0 || cfg.UsesKey(), drift: cfg.DriftCheckPeriodOrDefault() > 0}
	names, err := s.List(ctx, model.RoleStoragePrefix)
	if err != nil {
		return nil, use, err
	}
	roles := make(map[string]*model.RoleEntry, len(names))
	for _, name := range names {
		role, err := model.LoadRole(ctx, s, name)
		if err != nil {
			return nil, use, fmt.Errorf("reading role %q: %w", name, err)
		}
		if role == nil {
			continue
		}
		roles[name] = role
		use.roles++
		if _, ok := KindFor(role.KindKey()).(attachment); ok {
			use.attachingRoles++
		} else {
			use.secretRoles++
		}
	}
	return roles, use, nil
}

// checkScopes sets the scopes section from the token's claims.
func (c *Check) checkScopes(cfg *model.ConfigEntry, use mountUse, claims *auth0api.AccessTokenClaims, tokenErr error) {
	c.Scopes.Features = map[string]FeatureCheck{}
	switch {
	case errors.Is(tokenErr, auth0api.ErrNotJWT):
		c.Scopes.Error = auth0api.ErrNotJWT.Error()
		c.problem(fmt.Sprintf("%s; compare the Management API application's scopes %s with README's scope table by hand", auth0api.ErrNotJWT, grantScopesWhere))
		return
	case tokenErr != nil:
		c.Scopes.Error = fmt.Sprintf("could not obtain a Management API token: %s", DescribeTokenError(tokenErr))
		switch {
		case auth0api.AudienceRefused(tokenErr):
			// The audience section says what to do.
		case auth0api.CredentialsRejected(tokenErr):
			c.problem(fmt.Sprintf("Auth0 refused the Management API credentials of client_id %q (%s), so the scopes granted are unknown; write the application's current credentials to config (vault write <mount>/config client_id=... client_secret=...)", cfg.ClientID, DescribeTokenError(tokenErr)))
		default:
			c.problem(fmt.Sprintf("could not obtain a Management API token from %s with client_id %q, so the scopes granted are unknown: %s; check that Vault reaches the domain and that the application is authorized for the Auth0 Management API, then check again", cfg.Domain(), cfg.ClientID, DescribeTokenError(tokenErr)))
		}
		return
	}
	granted := slices.Clone(claims.Scopes)
	sort.Strings(granted)
	c.Scopes.Granted = granted
	var used []string
	for _, f := range checkFeatures {
		var all []string
		for _, n := range f.needs(cfg, use) {
			all = append(all, n...)
		}
		used = append(used, all...)
		missing := auth0api.ScopesToGrant(granted, f.needs(cfg, use))
		fc := FeatureCheck{OK: len(missing) == 0, Missing: missing, Required: f.required(use)}
		if fc.Missing == nil {
			fc.Missing = []string{}
		}
		c.Scopes.Features[f.name] = fc
		if !fc.OK && fc.Required {
			c.problem(fmt.Sprintf("%s (%s) needs %s, which the Management API application is not granted; grant it %s", f.name, f.what, strings.Join(missing, " and "), grantScopesWhere))
		}
	}
	c.Scopes.Unneeded = []string{}
	for _, s := range granted {
		if !slices.Contains(used, s) {
			c.Scopes.Unneeded = append(c.Scopes.Unneeded, s)
		}
	}
}

// checkAudience sets the audience section: what is wrong with the audience in itself, and
// what Auth0's answer to the token request says of it.
func (c *Check) checkAudience(cfg *model.ConfigEntry, tokenErr error) {
	a := &c.Audience
	a.Domain, a.Audience, a.Default, a.CanonicalDomain = cfg.Domain(), cfg.AudienceOrDefault(), cfg.Audience == "", cfg.CanonicalDomain()
	a.Problems = []string{}
	if p := cfg.AudienceProblem(); p != "" {
		c.audienceProblem(p)
	}
	switch {
	case tokenErr == nil || errors.Is(tokenErr, auth0api.ErrNotJWT):
		a.Accepted, a.AcceptedKnown = true, true
	case auth0api.AudienceRefused(tokenErr):
		a.AcceptedKnown = true
		c.audienceProblem(fmt.Sprintf("Auth0 refused a Management API token for audience %q (%s): it knows no API by that identifier, or the application is not authorized for it. If domain %s is the tenant's custom domain, set audience to the Identifier shown at Applications > APIs > Auth0 Management API, which names the canonical domain (vault write <mount>/config audience=https://<tenant>.<region>.auth0.com/api/v2/); otherwise authorize the application for the Auth0 Management API (Applications > APIs > Auth0 Management API > Machine to Machine Applications)",
			a.Audience, DescribeTokenError(tokenErr), a.Domain))
	default:
		// Auth0 said nothing of the audience: the names alone.
		if p := cfg.CustomDomainProblem(); p != "" {
			c.audienceProblem(p)
		}
	}
}

// audienceProblem records a problem of the audience.
func (c *Check) audienceProblem(problem string) {
	c.Audience.Problems = append(c.Audience.Problems, problem)
	c.record(problem)
}

// checkRateLimit sets the rate limit section from Auth0's answer (nil: none came, err
// says why).
func (c *Check) checkRateLimit(answer *auth0api.Answer, err error) {
	r := &c.RateLimit
	if answer == nil {
		if err == nil {
			err = errors.New("Auth0 sent no answer")
		}
		r.Error = c.failed(Auth0Failure("reading the Management API application's own client (for the tenant's rate limit and clock)", err))
		return
	}
	if !answer.HasRateLimit {
		return // Auth0 sent no x-ratelimit-* headers: nothing to compare with
	}
	r.Observed, r.Tenant = true, answer.RateLimit
	if r.Configured > float64(r.Tenant.Limit) {
		r.AboveTenant = true
		lower := math.Floor(float64(r.Tenant.Limit)*0.8*100) / 100
		c.problem(fmt.Sprintf("rate_limit is %g requests per second, above the %d requests the tenant's Management API bucket holds (x-ratelimit-limit): the mount would meet Auth0's 429s and wait them out; lower it a little below the tenant's limit, e.g. vault write <mount>/config rate_limit=%g",
			r.Configured, r.Tenant.Limit, lower))
	}
}

// checkClock sets the clock skew from the Date of Auth0's answer.
func (c *Check) checkClock(answer *auth0api.Answer) {
	if answer == nil {
		return
	}
	skew, ok := answer.ClockSkew()
	if !ok {
		return
	}
	c.ClockSkew, c.ClockSkewKnown = skew, true
	secs := int64(math.Round(math.Abs(skew.Seconds())))
	switch {
	case skew > auth0api.ClockSkewWarning:
		c.problem(fmt.Sprintf("Vault's clock is %d s ahead of Auth0's (the Date of its answer): Auth0 refuses a private_key_jwt assertion whose iat is more than %s ahead of its clock, and every assertion Vault signs carries Vault's time; synchronize this Vault node's clock (NTP)",
			secs, auth0api.AssertionClockSkew))
	case skew < -auth0api.ClockSkewWarning:
		c.problem(fmt.Sprintf("Vault's clock is %d s behind Auth0's (the Date of its answer): the private_key_jwt assertions Vault signs live %s and expire that much earlier at Auth0, and schedules and certificates run late; synchronize this Vault node's clock (NTP)",
			secs, auth0api.ManagementAssertionTTL))
	}
}

// checkRoles checks the roles named in only, or every role, up to CheckRolesLimit,
// looking their applications up at Auth0 unless skip says why not.
func (b *Engine) checkRoles(ctx context.Context, c *Check, conn *connection, roles map[string]*model.RoleEntry, only []string, skip auth0Skip) {
	names := only
	if len(names) == 0 {
		for name := range roles {
			names = append(names, name)
		}
		sort.Strings(names)
	}
	if len(names) > CheckRolesLimit {
		if len(only) == 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("the mount has %d roles; this check covered the first %d by name; check the others with roles=<name>,<name>,...", len(names), CheckRolesLimit))
		} else {
			c.Warnings = append(c.Warnings, fmt.Sprintf("roles= names %d roles; this check covered the first %d of them; check the others in another read", len(names), CheckRolesLimit))
		}
		names = names[:CheckRolesLimit]
	}
	now := b.Clock.Now()
	for _, name := range names {
		role := roles[name]
		if role == nil {
			c.Roles[name] = &RoleCheck{Problems: []string{}}
			c.roleProblem(name, c.Roles[name], "no such role; list the mount's roles: vault list <mount>/roles")
			continue
		}
		c.Roles[name] = b.checkRole(ctx, c, conn, name, role, now, skip)
	}
}

// roleProblem records a problem of role name.
func (c *Check) roleProblem(name string, rc *RoleCheck, problem string) {
	c.addRoleProblem(name, rc, problem)
}

// roleFailed records as a problem of role name what Auth0Failure made of a failure to
// reach Auth0 (documented where Auth0Failure makes it).
func (c *Check) roleFailed(name string, rc *RoleCheck, resp *logical.Response, err error) {
	c.addRoleProblem(name, rc, failureText(resp, err))
}

func (c *Check) addRoleProblem(name string, rc *RoleCheck, text string) {
	if slices.Contains(rc.Problems, text) {
		return
	}
	rc.Problems = append(rc.Problems, text)
	c.problem(fmt.Sprintf("role %q: %s", name, text))
}

// checkRole checks one role: its settings against the config and its kind, and its
// application as Auth0 has it.
func (b *Engine) checkRole(ctx context.Context, c *Check, conn *connection, name string, role *model.RoleEntry, now time.Time, skip auth0Skip) *RoleCheck {
	kind := KindFor(role.KindKey())
	rc := &RoleCheck{ClientID: role.ClientID, CredentialType: kind.CredentialType(), RotationStrategy: kind.Strategy(), Problems: []string{}}
	if rc.RotationStrategy == "" && kind.CredentialType() == model.CredentialClientSecret {
		rc.RotationStrategy = model.StrategyImmediate
	}
	if role.Blocked != "" {
		c.roleProblem(name, rc, role.Blocked)
	}
	if !conn.Config.ClientAllowed(role.ClientID) {
		c.roleProblem(name, rc, model.NotAllowedClient(role.ClientID))
	}
	if p := role.ScheduleProblem(now); p != "" {
		c.roleProblem(name, rc, p)
	}
	if p := kind.scheduleProblem(role, now); p != "" {
		c.roleProblem(name, rc, p)
	}
	if skip != lookUp {
		c.roleProblem(name, rc, skip.reason())
		return rc
	}
	api, err := keyAPIOf(conn)
	if err != nil {
		c.roleFailed(name, rc, nil, err)
		return rc
	}
	method := ""
	if a, ok := kind.(attachment); ok {
		method = a.method()
	}
	methods, err := api.AuthMethods(ctx, role.ClientID, method)
	switch {
	case auth0api.ClientNotFound(err):
		c.roleProblem(name, rc, fmt.Sprintf("application %q does not exist in Auth0, so the role rotates nothing; delete the role (vault delete <mount>/roles/%s), or create it again with the client_id of an existing application", role.ClientID, name))
	case err != nil:
		resp, err := Auth0Failure(fmt.Sprintf("checking the application of role %q (client_id %q)", name, role.ClientID), err)
		c.roleFailed(name, rc, resp, err)
	default:
		if p := kind.applicationProblem(role, methods); p != "" {
			c.roleProblem(name, rc, p)
		}
	}
	return rc
}

// failureText is the message of what Auth0Failure answers.
func failureText(resp *logical.Response, err error) string {
	if resp != nil && resp.IsError() {
		return resp.Error().Error()
	}
	if err != nil {
		return err.Error()
	}
	return "Auth0 answered an error"
}
