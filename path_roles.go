package auth0

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationSuffix: "role",
			},
			Fields: engine.WithKindFields(map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role.",
					Required:    true,
				},
				"client_id": {
					Type:        framework.TypeString,
					Description: "Client ID of the Auth0 application whose secret this role manages. Required on create, checked against Auth0; cannot be changed afterwards.",
				},
				"rotation_period": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("Rotate automatically this long after the last rotation (e.g. \"720h\"). 0 or unset: no automatic rotation. At least %s. Mutually exclusive with rotation_schedule.", model.MinRotationPeriod),
				},
				"rotation_schedule": {
					Type:        framework.TypeString,
					Description: `Rotate automatically on this standard 5-field cron schedule, in UTC (e.g. "0 3 * * SUN"). Mutually exclusive with rotation_period; an empty value removes it.`,
				},
				"rotation_window": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("Only with rotation_schedule: how long after a scheduled time a rotation may still start; a missed window waits for the next scheduled time. At least %s; unset means no limit.", model.MinRotationWindow),
				},
				"max_versions": {
					Type:        framework.TypeInt,
					Description: fmt.Sprintf("How many secret versions are retained, oldest removed first. Default %d, at most %d.", model.DefaultMaxVersions, model.MaxMaxVersions),
				},
				"rotation_strategy": {
					Type:        framework.TypeString,
					Description: `How a rotation changes the secret at Auth0. "immediate" (default): Auth0's rotate-secret; the old secret stops working at once. "staged": Vault generates the next secret, publishes it as next_client_secret for stage_period, then sets it on Auth0 (zero downtime for consumers that fall back to next_client_secret). A role with a staged secret changes strategy only after it switched or was cancelled.`,
				},
				"credential_type": {
					Type:        framework.TypeString,
					Description: engine.CredentialTypeHelp(),
				},
				"token_audiences": {
					Type:        framework.TypeCommaStringSlice,
					Description: "APIs (audience identifiers) token/<name> may mint access tokens for; the first is the default. Empty: token/<name> is refused.",
				},
				"token_scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Scopes token/<name> requests; empty: whatever Auth0 grants the application for the audience.",
				},
				"allow_assertions": {
					Type:        framework.TypeBool,
					Description: "private_key_jwt roles: allow assertion/<name> to sign client assertions with the role's key. Default false.",
				},
				"assertion_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("Lifetime of the client assertions assertion/<name> signs. Default %s, between %s and %s.", engine.DefaultAssertionTTL, engine.MinAssertionTTL, engine.MaxAssertionTTL),
				},
				"max_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("The largest ttl creds/<name> answers: consumers that re-read at ttl (Vault Agent, Vault Secrets Operator) read at least this often, so a manual rotation reaches them within it, and those of a role without a schedule keep reading at all. Default %s, or a quarter of stage_period (staged roles) or overlap_period (private_key_jwt and self_signed_tls_client_auth roles) when that is shorter; at least %s, and shorter than stage_period or overlap_period. 0 restores the default.", model.DefaultMaxTTL, model.MinMaxTTL),
				},
				"drift_action": {
					Type:        framework.TypeString,
					Description: `What a drift check (config's drift_check_period) does when Auth0 no longer holds the role's credential (rotated in the Auth0 Dashboard, a key detached): "report" (default) records it (drift_detected), logs it at Error and counts it in auth0/status and the metrics; "rotate" also rotates at once, through the normal job path, to take the credential back.`,
				},
				"import_current_secret": {
					Type:        framework.TypeBool,
					Description: "Only on create: store the application's current Auth0 secret as version 1 instead of waiting for the first rotation (needs the read:client_keys scope).",
					Default:     false,
				},
			}, func(s engine.KindSchemas) map[string]*framework.FieldSchema { return s.Role }),
			ExistenceCheck: b.pathRoleExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: roleWriteSummary, Description: pathRolesHelpDesc},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: roleWriteSummary, Description: pathRolesHelpDesc},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRoleRead,
					Summary:   "Read a role's definition and rotation state, without secrets.",
					Responses: roleReadResponses,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:    b.pathRoleDelete,
					Summary:     "Delete a role.",
					Description: "Deletes the role and all its retained versions from Vault and frees its application for another role. Nothing changes at Auth0.",
				},
			},
			HelpSynopsis:    pathRolesHelpSyn,
			HelpDescription: pathRolesHelpDesc,
		},
		{
			Pattern: "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:    b.pathRoleList,
					Summary:     "List the roles.",
					Description: "vault list -detailed also shows, per role, its client_id, rotation_strategy, credential_type, current_version, next_vault_rotation, and last_rotation_failure or rotation_blocked when there is one.",
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							"keys":     {Type: framework.TypeStringSlice, Description: "Names of the roles."},
							"key_info": {Type: framework.TypeMap, Description: "Per role: client_id, rotation_strategy, credential_type, current_version, and when set next_vault_rotation, last_rotation_failure and rotation_blocked (an error for a role that cannot be read)."},
						},
					}}},
				},
			},
			HelpSynopsis:    pathRolesListHelpSyn,
			HelpDescription: pathRolesListHelpDesc,
		},
	}
}

func (b *backend) pathRoleExistenceCheck(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := model.LoadRole(ctx, req.Storage, d.Get("name").(string))
	return role != nil, err
}

// pathRoleList lists the roles with, for vault list -detailed, each one's application,
// strategy, credential type, version, next rotation and failure, if any: one read per role.
func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, model.RoleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	info := make(map[string]interface{}, len(names))
	for _, name := range names {
		role, err := model.LoadRole(ctx, req.Storage, name)
		if err != nil {
			info[name] = map[string]interface{}{"error": err.Error()}
			continue
		}
		if role == nil {
			continue
		}
		kind := engine.KindFor(role.KindKey())
		entry := map[string]interface{}{
			"client_id":         role.ClientID,
			"rotation_strategy": strategyName(kind),
			"credential_type":   kind.CredentialType(),
			"current_version":   role.CurrentVersion(),
		}
		engine.AddTime(entry, "next_vault_rotation", role.NextVaultRotation)
		if f := role.LastFailure; f != nil {
			entry["last_rotation_failure"] = failureData(f, role.NextAttempt)
		}
		if role.Blocked != "" {
			entry["rotation_blocked"] = role.Blocked
		}
		info[name] = entry
	}
	return logical.ListResponseWithInfo(names, info), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, err := model.LoadRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	data := map[string]interface{}{
		"client_id":         role.ClientID,
		"rotation_period":   int64(role.RotationPeriod.Seconds()),
		"rotation_schedule": role.RotationSchedule,
		"rotation_window":   int64(role.RotationWindow.Seconds()),
		"max_versions":      role.MaxVersions,
		"current_version":   role.CurrentVersion(),
		"max_ttl":           int64(engine.RoleMaxTTL(role).Seconds()),
	}
	engine.AddTime(data, "last_vault_rotation", role.LastVaultRotation)
	engine.AddTime(data, "next_vault_rotation", role.NextVaultRotation)
	if role.Warning != "" {
		data["warning"] = role.Warning
	}
	if role.Blocked != "" {
		data["rotation_blocked"] = role.Blocked
	}
	kind := engine.KindFor(role.KindKey())
	data["rotation_strategy"] = strategyName(kind)
	data["credential_type"] = kind.CredentialType()
	kind.ReadFields(role, data)
	if len(role.TokenAudiences) > 0 {
		data["token_audiences"] = role.TokenAudiences
		data["token_scopes"] = role.TokenScopes
		st := b.Tokens.StatsOf(d.Get("name").(string))
		data["token_cache"] = map[string]interface{}{
			"hits":                 st.Hits.Load(),
			"misses":               st.Misses.Load(),
			"auth0_token_requests": st.Requests.Load(),
			"auth0_token_failures": st.Failures.Load(),
		}
	}
	if f := role.LastFailure; f != nil {
		data["last_rotation_failure"] = failureData(f, role.NextAttempt)
	}
	data["drift_action"] = driftAction(role)
	if dr := role.DriftDetected; dr != nil {
		data["drift_detected"] = map[string]interface{}{"time": dr.Time.UTC().Format(time.RFC3339), "what": dr.What}
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()

	role, err := model.LoadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	creating := role == nil
	if creating {
		role = &model.RoleEntry{Layout: model.RoleLayout, MaxVersions: model.DefaultMaxVersions}
	} else if role.Legacy() {
		if err := b.UpgradeRoleLocked(ctx, req.Storage, name, role); err != nil {
			return nil, err
		}
	}
	oldSchedule, oldPeriod, oldType := role.RotationSchedule, role.RotationPeriod, role.CredentialType

	now := b.Clock.Now().UTC()
	dropped, resp := applyRoleFields(role, d, creating, now)
	if resp != nil {
		return resp, nil
	}
	if !creating && role.CredentialType != oldType {
		// applyRoleFields saw no version; a commit cut before its role write may still
		// have stored one for creds to serve (its write-ahead entry finishes it).
		if creds, err := model.LoadCreds(ctx, req.Storage, name); err != nil {
			return nil, err
		} else if creds != nil {
			return logical.ErrorResponse("credential_type cannot change once the role has a version; create another role for the application's %s (delete this one first: one application belongs to one role)", engine.CredentialTypeName(role.CredentialType)), nil
		}
	}

	if raw, ok := d.GetOk("password_policy"); ok && raw.(string) != "" {
		if _, err := b.GenerateSecret(ctx, role.PasswordPolicy); err != nil {
			return logical.ErrorResponse("password_policy %q cannot generate a secret (%v); create it first (vault write sys/policies/password/%s policy=@policy.hcl) or leave password_policy empty", role.PasswordPolicy, err, role.PasswordPolicy), nil
		}
	}

	// allowed_client_ids, on every write: a role whose application the mount may no longer
	// rotate can only be deleted.
	if conn, err := b.Connection(ctx, req.Storage); err != nil {
		return nil, err
	} else if conn != nil && !conn.Config.ClientAllowed(role.ClientID) {
		return logical.ErrorResponse(model.NotAllowedClient(role.ClientID)), nil
	}

	var imported string
	if creating {
		conn, resp, err := b.RequireConnection(ctx, req.Storage)
		if resp != nil || err != nil {
			return resp, err
		}
		if conn.Config.ClientID == role.ClientID {
			return logical.ErrorResponse(model.OwnerConflict(role.ClientID, model.OwnerConfig)), nil
		}
		importSecret := d.Get("import_current_secret").(bool)
		info, err := conn.Client.ReadClient(ctx, role.ClientID, importSecret)
		if err != nil {
			return engine.Auth0Failure(fmt.Sprintf("checking client_id %q in Auth0", role.ClientID), err)
		}
		imported = info.Secret
		if resp, err := engine.KindFor(role.KindKey()).CheckApplication(ctx, conn, role); resp != nil || err != nil {
			return resp, err
		}
	}

	// Ownership is checked and claimed, and the role stored, as one step, so that two
	// writes naming one application cannot both win.
	b.OwnerMu.Lock()
	defer b.OwnerMu.Unlock()
	owner, err := engine.ClaimApplicationLocked(ctx, req.Storage, name, role.ClientID)
	if err != nil {
		return nil, err
	}
	role.Blocked = ""
	if owner != "" {
		if creating {
			return logical.ErrorResponse(model.OwnerConflict(role.ClientID, owner)), nil
		}
		role.Blocked = model.OwnerBlocked(role.ClientID, owner)
	}

	if creating || role.RotationSchedule != oldSchedule || role.RotationPeriod != oldPeriod || role.ScheduleProblem(now) != "" {
		from := role.LastVaultRotation
		if from.IsZero() || role.RotationSchedule != "" {
			from = now
		}
		role.NextVaultRotation = role.NextRotation(from)
		role.NextAttempt = time.Time{}
	}

	if creating {
		// Leftovers of an earlier role of this name whose delete was cut short.
		if err := b.DeleteRoleData(ctx, req.Storage, name); err != nil {
			return nil, err
		}
	}
	if imported != "" {
		if _, err := b.CommitVersion(req.Storage, name, role, imported, model.SourceImport, "", now); err != nil {
			b.UndoFailedCreate(ctx, req.Storage, name, role.ClientID)
			return nil, err
		}
	} else if creating {
		if err := b.StoreRoleState(ctx, req.Storage, name, role); err != nil {
			b.UndoFailedCreate(ctx, req.Storage, name, role.ClientID)
			return nil, err
		}
	} else if err := b.StoreRoleWrite(ctx, req.Storage, name, role); err != nil {
		return nil, err
	}
	if len(dropped) > 0 {
		b.PruneSecrets(ctx, req.Storage, name, role)
	}
	b.Tokens.DropRole(name) // audiences or scopes may have changed
	b.Schedule(name, role)
	return nil, nil
}

// applyRoleFields validates the request's fields and applies them to role. It returns an
// error response, and leaves storage untouched, on any invalid value.
func applyRoleFields(role *model.RoleEntry, d *framework.FieldData, creating bool, now time.Time) ([]*model.VersionMeta, *logical.Response) {
	if raw, ok := d.GetOk("client_id"); ok {
		clientID := strings.TrimSpace(raw.(string))
		switch {
		case clientID == "":
			return nil, logical.ErrorResponse("client_id must not be empty")
		case !creating && clientID != role.ClientID:
			return nil, logical.ErrorResponse("client_id cannot be changed (role has %q); delete the role and create it again to manage another application", role.ClientID)
		}
		role.ClientID = clientID
	}
	if creating && role.ClientID == "" {
		return nil, logical.ErrorResponse("client_id is required: the client ID of the Auth0 application whose secret this role manages")
	}
	if _, ok := d.GetOk("import_current_secret"); ok && !creating {
		return nil, logical.ErrorResponse("import_current_secret is accepted only when the role is created")
	}

	if raw, ok := d.GetOk("rotation_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period != 0 && period < model.MinRotationPeriod {
			return nil, logical.ErrorResponse("rotation_period must be 0 (no automatic rotation) or at least %s, got %s", model.MinRotationPeriod, period)
		}
		role.RotationPeriod = period
	}
	if raw, ok := d.GetOk("rotation_schedule"); ok {
		spec := strings.TrimSpace(raw.(string))
		if spec != "" {
			if err := model.ValidateSchedule(spec, now); err != nil {
				return nil, logical.ErrorResponse("invalid rotation_schedule %q: %s", spec, err)
			}
		} else if _, windowGiven := d.GetOk("rotation_window"); !windowGiven {
			role.RotationWindow = 0 // a window means nothing without a schedule
		}
		role.RotationSchedule = spec
	}
	if raw, ok := d.GetOk("rotation_window"); ok {
		window := time.Duration(raw.(int)) * time.Second
		if window != 0 && window < model.MinRotationWindow {
			return nil, logical.ErrorResponse("rotation_window must be 0 (no limit) or at least %s, got %s", model.MinRotationWindow, window)
		}
		role.RotationWindow = window
	}
	if role.RotationPeriod > 0 && role.RotationSchedule != "" {
		return nil, logical.ErrorResponse(`rotation_period and rotation_schedule are mutually exclusive; to switch, clear the other one in the same write (rotation_period=0 or rotation_schedule="")`)
	}
	if role.RotationWindow > 0 && role.RotationSchedule == "" {
		return nil, logical.ErrorResponse("rotation_window is only valid with rotation_schedule")
	}

	if raw, ok := d.GetOk("drift_action"); ok {
		switch a := strings.ToLower(strings.TrimSpace(raw.(string))); a {
		case "", model.DriftActionReport:
			role.DriftAction = ""
		case model.DriftActionRotate:
			role.DriftAction = a
		default:
			return nil, logical.ErrorResponse("drift_action must be %q or %q, got %q", model.DriftActionReport, model.DriftActionRotate, raw)
		}
	}
	if raw, ok := d.GetOk("max_ttl"); ok {
		ttl := time.Duration(raw.(int)) * time.Second
		if ttl != 0 && ttl < model.MinMaxTTL {
			return nil, logical.ErrorResponse("max_ttl must be 0 (the default) or at least %s, got %s: consumers treat a ttl of 2 seconds or less as a rotation about to happen", model.MinMaxTTL, ttl)
		}
		role.MaxTTL = ttl
	}
	if raw, ok := d.GetOk("max_versions"); ok {
		n := raw.(int)
		if n < 1 || n > model.MaxMaxVersions {
			return nil, logical.ErrorResponse("max_versions must be between 1 and %d, got %d", model.MaxMaxVersions, n)
		}
		role.MaxVersions = n
	}
	kind, resp := engine.SelectKind(role, d)
	if resp != nil {
		return nil, resp
	}
	if resp := kind.ApplyFields(role, d, creating, now); resp != nil {
		return nil, resp
	}
	if resp := applyTokenFields(role, d); resp != nil {
		return nil, resp
	}
	if lead := engine.ConsumerLead(role); role.MaxTTL > 0 && lead > 0 && role.MaxTTL >= lead {
		what := "overlap_period"
		if kind.Strategy() == model.StrategyStaged {
			what = "stage_period"
		}
		return nil, logical.ErrorResponse("max_ttl (%s) must be shorter than %s (%s): consumers re-reading at ttl would see a manually rotated credential only after Auth0 requires it; lower max_ttl (0: the default, a quarter of %s)", role.MaxTTL, what, lead, what)
	}
	return role.TrimVersions(), nil
}

// applyTokenFields validates and applies the fields of token/ and assertion/.
func applyTokenFields(role *model.RoleEntry, d *framework.FieldData) *logical.Response {
	clean := func(list []string) []string {
		var out []string
		for _, v := range list {
			if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	if raw, ok := d.GetOk("token_audiences"); ok {
		role.TokenAudiences = clean(raw.([]string))
	}
	if raw, ok := d.GetOk("token_scopes"); ok {
		role.TokenScopes = clean(raw.([]string))
	}
	if raw, ok := d.GetOk("allow_assertions"); ok {
		role.AllowAssertions = raw.(bool)
	}
	if raw, ok := d.GetOk("assertion_ttl"); ok {
		ttl := time.Duration(raw.(int)) * time.Second
		if ttl < engine.MinAssertionTTL || ttl > engine.MaxAssertionTTL {
			return logical.ErrorResponse("assertion_ttl must be between %s and %s (Auth0 refuses assertions valid longer than 5 minutes), got %s", engine.MinAssertionTTL, engine.MaxAssertionTTL, ttl)
		}
		role.AssertionTTL = ttl
	}
	if role.AllowAssertions && role.CredentialType != model.CredentialPrivateKeyJWT {
		return logical.ErrorResponse("allow_assertions applies only with credential_type=private_key_jwt: a client secret cannot sign an assertion")
	}
	if role.AssertionTTL != 0 && !role.AllowAssertions && engine.FieldSet(d, "assertion_ttl") {
		return logical.ErrorResponse("assertion_ttl applies only with allow_assertions=true")
	}
	return nil
}

// strategyName is the rotation_strategy a role of kind reports.
func strategyName(kind engine.CredentialKind) string {
	if kind.Strategy() == "" {
		return model.StrategyImmediate
	}
	return kind.Strategy()
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.RoleLock(name)
	lock.Lock()
	defer lock.Unlock()
	role, err := model.LoadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		// Nothing to delete, unless a create was cut short after storing what creds serve
		// (an import) and before the role: those leftovers go, with their claim.
		creds, err := model.LoadCreds(ctx, req.Storage, name)
		if err != nil || creds == nil {
			return nil, err
		}
		if err := b.DeleteRoleData(ctx, req.Storage, name); err != nil {
			return nil, err
		}
		b.Tokens.ForgetRole(name)
		return nil, b.ReleaseApplication(ctx, req.Storage, name, creds.ClientID)
	}
	// What creds serves goes first, the ownership claim last: a delete cut short leaves a
	// role that serves nothing and can be deleted again, never an application without
	// its owner while the role still exists.
	if err := b.DeleteRoleData(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := model.DeleteKey(ctx, req.Storage, model.RoleKey(name)); err != nil {
		return nil, err
	}
	b.Schedule(name, nil)
	b.Tokens.ForgetRole(name)
	b.Metrics.ForgetRole(name)
	if err := b.ReleaseApplication(ctx, req.Storage, name, role.ClientID); err != nil {
		return nil, err
	}
	return nil, nil
}

// failureData is how a read shows a recorded failure.
func failureData(f *model.RotationFailure, nextAttempt time.Time) map[string]interface{} {
	data := map[string]interface{}{
		"time":                 f.Time.Format(time.RFC3339),
		"message":              f.Message,
		"consecutive_failures": f.ConsecutiveFailures,
	}
	engine.AddTime(data, "since", f.Since)
	engine.AddTime(data, "next_attempt", nextAttempt)
	return data
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}

const roleWriteSummary = "Create or update a role: bind a name to an Auth0 application."

// roleReadResponses documents a role read (OpenAPI, docs/API.md).
var roleReadResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: engine.WithKindFields(map[string]*framework.FieldSchema{
		"client_id":             {Type: framework.TypeString, Description: "Client ID of the role's Auth0 application."},
		"rotation_period":       {Type: framework.TypeInt64, Description: "Seconds between automatic rotations; 0: none."},
		"rotation_schedule":     {Type: framework.TypeString, Description: "Cron schedule of automatic rotations, in UTC; empty: none."},
		"rotation_window":       {Type: framework.TypeInt64, Description: "Seconds after a scheduled time a rotation may still start; 0: no limit."},
		"max_versions":          {Type: framework.TypeInt, Description: "How many versions are retained."},
		"current_version":       {Type: framework.TypeInt, Description: "Version creds serve; 0 before the first rotation or import."},
		"max_ttl":               {Type: framework.TypeInt64, Description: "Seconds: the largest ttl creds answers (the role's max_ttl, or its default)."},
		"last_vault_rotation":   {Type: framework.TypeTime, Description: "When the current version was made (RFC 3339)."},
		"next_vault_rotation":   {Type: framework.TypeTime, Description: "When the next scheduled rotation is due (RFC 3339); only when scheduled."},
		"warning":               {Type: framework.TypeString, Description: "Something an operator should know, e.g. a rotation had to be repeated because a lost answer could not be read back."},
		"rotation_blocked":      {Type: framework.TypeString, Description: "Why the engine will not rotate this role until an operator acts."},
		"rotation_strategy":     {Type: framework.TypeString, Description: `"immediate" or "staged".`},
		"credential_type":       {Type: framework.TypeString, Description: `"client_secret", "private_key_jwt" or "self_signed_tls_client_auth".`},
		"token_audiences":       {Type: framework.TypeStringSlice, Description: "APIs token/<name> may mint access tokens for."},
		"token_scopes":          {Type: framework.TypeStringSlice, Description: "Scopes token/<name> requests."},
		"token_cache":           {Type: framework.TypeMap, Description: "With token_audiences, on this node: hits, misses, auth0_token_requests and auth0_token_failures of token/<name>."},
		"allow_assertions":      {Type: framework.TypeBool, Description: "private_key_jwt roles: whether assertion/<name> signs client assertions."},
		"assertion_ttl":         {Type: framework.TypeInt64, Description: "With allow_assertions: lifetime of the signed assertions, in seconds."},
		"drift_action":          {Type: framework.TypeString, Description: "report or rotate: what a drift check does when Auth0 no longer holds the role's credential."},
		"drift_detected":        {Type: framework.TypeMap, Description: "While the last drift check found Auth0 no longer holds the role's credential: when (time) and what differs (what). A check that finds no difference, or a new version, clears it."},
		"last_rotation_failure": {Type: framework.TypeMap, Description: "While rotations fail: time and message of the last failure, since (first failure of the run), consecutive_failures and next_attempt."},
	}, func(s engine.KindSchemas) map[string]*framework.FieldSchema { return s.Read }),
}}}

const pathRolesHelpSyn = `Bind a Vault role to an Auth0 application.`

var pathRolesHelpDesc = `
A role names one Auth0 application (client_id) whose client secret the engine owns.
On create the application is looked up in Auth0; an unknown client_id is refused and
nothing is stored.

A new role has no secret until it is rotated (vault write -f auth0/rotate/<name>, or its
first scheduled rotation, one rotation_period after creation), or, with
import_current_secret=true, the application's current secret is stored as version 1
without rotating. Creating a role never rotates: applications may still be using the
current secret.

` + engine.KindHelp(func(s engine.KindSchemas) string { return s.RoleHelp }) + `One application belongs to at most one role of a mount, and never to the mount's own
Management API application (config's client_id): a write naming such a client_id is
refused with the owner's name. Deleting a role frees its application.

Automatic rotation: set rotation_period (e.g. 720h) or rotation_schedule (5-field cron,
UTC, e.g. "0 3 * * SUN", optionally with rotation_window). A schedule must fire within
the next five years; one that never does (e.g. "0 0 30 2 *") is refused. max_versions
(default 10) bounds how many versions are retained.

Reading a role shows its settings, current_version, last_vault_rotation,
next_vault_rotation, never a secret, and when something needs attention:

  last_rotation_failure  the last failed attempt (time, message, consecutive_failures)
                         and next_attempt: retries back off from 10s, doubling, to 1h
  rotation_blocked       why the engine does not rotate this role until its operator acts
                         (its application belongs to another role, or a schedule stored by
                         an older build never fires)
  warning                e.g. a scope to grant

Deleting a role removes it and all its versions from Vault; it never changes anything in
Auth0.
`

const pathRolesListHelpSyn = `List the roles.`

const pathRolesListHelpDesc = `Lists the names of all roles of this mount.`
