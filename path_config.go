package auth0

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// minDriftCheckPeriod bounds drift_check_period from below: every role is checked once a
// period, one Management API call each.
const minDriftCheckPeriod = time.Minute

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "config",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
			},
			Fields: map[string]*framework.FieldSchema{
				"domain": {
					Type:        framework.TypeString,
					Description: `Auth0 tenant or custom domain, e.g. "acme.eu.auth0.com" (a leading "https://" is accepted). "http://" is accepted only for loopback hosts, for a local emulator.`,
					DisplayAttrs: &framework.DisplayAttributes{
						Name: "Domain",
					},
				},
				"client_id": {
					Type:        framework.TypeString,
					Description: "Client ID of the machine-to-machine application that calls the Management API. It must not be the application of any role of this mount.",
				},
				"client_secret": {
					Type:        framework.TypeString,
					Description: "Client secret of that application. Write-only: never returned or logged.",
					DisplayAttrs: &framework.DisplayAttributes{
						Sensitive: true,
					},
				},
				"audience": {
					Type:        framework.TypeString,
					Description: `Management API audience. Defaults to "https://<domain>/api/v2/"; set it when domain is a custom domain. An empty value restores the default.`,
				},
				"request_timeout": {
					Type:        framework.TypeDurationSecond,
					Description: "Timeout of each HTTP request to Auth0 (token and Management API). Defaults to 30s.",
					Default:     int(model.DefaultRequestTimeout.Seconds()),
				},
				"rate_limit": {
					Type:        framework.TypeFloat,
					Description: "Most Management API requests per second this mount makes, manual and scheduled rotations together. Defaults to 2, what the smallest Auth0 plans allow. After a 429 the mount also waits as Auth0's Retry-After says.",
					Default:     auth0api.DefaultRateLimit,
				},
				"propagation_wait": {
					Type:        framework.TypeDurationSecond,
					Description: "How long Auth0 may take to apply a credential change everywhere (it documents up to 30 seconds): a new private_key_jwt key is attached at Auth0 this long before creds serve it, while the current key keeps working. Default 30s; at most 5m.",
					Default:     int(model.DefaultPropagationWait.Seconds()),
				},
				"creds_cache_size": {
					Type:        framework.TypeInt,
					Description: fmt.Sprintf("How many roles' creds entries each Vault node keeps decoded in memory, so creds/ reads need no storage round trip (least recently filled evicted first). Default %d; 0 disables the cache; at most %d.", model.DefaultCredsCacheSize, engine.MaxCredsCacheSize),
					Default:     model.DefaultCredsCacheSize,
				},
				"drift_check_period": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("How often each role's credential is checked against what Auth0 holds (the secret, by hash, which needs read:client_keys; the attached keys and certificates, by id), each role at its own moment of the period so that the checks spread out, paced by rate_limit. Default %s; 0 turns drift checks off; at least %s.", model.DefaultDriftCheckPeriod, minDriftCheckPeriod),
					Default:     int(model.DefaultDriftCheckPeriod.Seconds()),
				},
				"metrics_role_labels": {
					Type:        framework.TypeBool,
					Description: "Label auth0/metrics' per-role series (rotations, creds reads) with role names. Off by default: a series per role costs Prometheus storage, and role names can say more than an operator wants in a monitoring system.",
					Default:     false,
				},
				"token_refresh_fraction": {
					Type:        framework.TypeFloat,
					Description: "token/<name>: the part of an access token's lifetime after which Vault asks Auth0 for a new one instead of serving the cached one; between 0.1 and 1, default 0.67 (refresh after two thirds).",
					Default:     model.DefaultTokenRefreshFraction,
				},
				"root_rotation_period": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("Rotate the Management API application's own secret automatically this often (e.g. \"720h\"); 0 disables it. At least %s.", model.MinRotationPeriod),
				},
				"allowed_client_ids": {
					Type:        framework.TypeCommaStringSlice,
					Description: `Applications this mount's roles may bind and rotate: client IDs, and globs in which "*" matches any run of characters (e.g. "team-a-*"). Checked on every role write and at every rotation. Empty (the default): any application of the tenant.`,
				},
				"allow_domain_change": {
					Type:        framework.TypeBool,
					Description: "Allow a write that changes domain while the mount has roles. Roles' secrets and keys are sent only to the domain the mount is configured for, so this moves them to the new one: only for the same tenant under another name (e.g. its custom domain).",
				},
				"credential_type": {
					Type:        framework.TypeString,
					Description: `How the mount authenticates to the Management API: "client_secret" (default) or "private_key_jwt": Vault generates a key, registers and attaches it to the Management API application (switching it off its client secret, one way), signs its token requests with it, and config/rotate-root rotates it with an overlap. The first key is made with the client secret given in the same write, or the one stored (the migration); or give private_key and key_id of a key registered already.`,
				},
				"private_key": {
					Type:         framework.TypeString,
					Description:  "With credential_type=private_key_jwt: the private key (PEM, PKCS #8) of a key already registered and attached to the Management API application, instead of letting Vault make the first one. Write-only.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
				},
				"key_id": {
					Type:        framework.TypeString,
					Description: "With private_key: the Auth0 credential id of that key.",
				},
				"root_overlap_period": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("With credential_type=private_key_jwt: how long the previous key stays attached after config/rotate-root. Default %s; 0 detaches it at once.", model.DefaultRootOverlapPeriod),
				},
				"verify_connection": {
					Type:        framework.TypeBool,
					Description: "On write, obtain a Management API token with the given credentials first; if Auth0 refuses, the write fails and nothing is stored.",
					Default:     true,
				},
			},
			ExistenceCheck: b.pathConfigExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: configWriteSummary, Description: pathConfigHelpDesc},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: configWriteSummary, Description: pathConfigHelpDesc},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathConfigRead,
					Summary:   "Read the Management API connection; client_secret is never shown.",
					Responses: configReadResponses,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:    b.pathConfigDelete,
					Summary:     "Delete the Management API connection.",
					Description: "Removes the connection from Vault and stops scheduled root rotations. Roles stay and nothing changes at Auth0, but until config is written again no rotation can run and creds cannot be read (they answer config's domain).",
				},
			},
			HelpSynopsis:    pathConfigHelpSyn,
			HelpDescription: pathConfigHelpDesc,
		},
	}
}

func (b *backend) pathConfigExistenceCheck(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := model.LoadConfig(ctx, req.Storage)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := model.LoadConfig(ctx, req.Storage)
	if err != nil || cfg == nil {
		return nil, err
	}
	data := map[string]interface{}{
		"domain":                 cfg.Domain(),
		"client_id":              cfg.ClientID,
		"audience":               cfg.AudienceOrDefault(),
		"request_timeout":        int64(cfg.RequestTimeoutOrDefault().Seconds()),
		"rate_limit":             cfg.RateLimitOrDefault(),
		"root_rotation_period":   int64(cfg.RootRotationPeriod.Seconds()),
		"token_refresh_fraction": cfg.TokenRefreshFractionOrDefault(),
		"creds_cache_size":       cfg.CredsCacheSizeOrDefault(),
		"propagation_wait":       int64(cfg.PropagationWaitOrDefault().Seconds()),
		"metrics_role_labels":    cfg.MetricsRoleLabels,
		"drift_check_period":     int64(cfg.DriftCheckPeriodOrDefault().Seconds()),
	}
	engine.AddTime(data, "last_root_rotation", cfg.LastRootRotation)
	if cfg.RootRotationPeriod > 0 {
		engine.AddTime(data, "next_root_rotation", cfg.NextRootRotation)
	}
	if f := cfg.RootFailures.LastFailure; f != nil {
		data["last_root_rotation_failure"] = failureData(f, cfg.RootFailures.NextAttempt)
	}
	engine.RootKeyFields(cfg, data)
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.ConfigMu.Lock()
	defer b.ConfigMu.Unlock()

	cfg, err := model.LoadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = new(model.ConfigEntry)
	}
	// The stored secret goes only to the domain and application it was written for.
	prevScheme, prevHost, prevClientID := cfg.Scheme, cfg.Host, cfg.ClientID

	if raw, ok := d.GetOk("domain"); ok {
		scheme, host, err := model.ParseDomain(raw.(string))
		if err != nil {
			shown := raw.(string)
			if strings.Contains(shown, "@") {
				shown = "(not shown: it holds user info, perhaps a password)"
			}
			return logical.ErrorResponse("invalid domain %q: %s", shown, err), nil
		}
		cfg.Scheme, cfg.Host = scheme, host
	}
	if raw, ok := d.GetOk("client_id"); ok {
		cfg.ClientID = strings.TrimSpace(raw.(string))
	}
	if raw, ok := d.GetOk("client_secret"); ok {
		cfg.ClientSecret = raw.(string)
		if strings.TrimSpace(cfg.ClientSecret) == "" {
			return logical.ErrorResponse("client_secret must not be empty"), nil
		}
		// An operator-supplied secret supersedes an unfinished root rotation.
		cfg.PendingClientSecret = ""
	}
	if _, ok := d.GetOk("client_secret"); !ok && prevHost != "" {
		var changed []string
		if cfg.Scheme != prevScheme || cfg.Host != prevHost {
			changed = append(changed, "domain")
		}
		if cfg.ClientID != prevClientID {
			changed = append(changed, "client_id")
		}
		if len(changed) > 0 {
			return logical.ErrorResponse("changing %s requires client_secret in the same write: the stored secret is only ever sent to the domain and application it was written for; nothing was stored", strings.Join(changed, " and ")), nil
		}
	}
	if raw, ok := d.GetOk("allowed_client_ids"); ok {
		ids := raw.([]string)
		if err := model.ValidateAllowedClientIDs(ids); err != nil {
			return logical.ErrorResponse("invalid allowed_client_ids: %s", err), nil
		}
		cfg.AllowedClientIDs = ids
		if len(ids) == 0 {
			cfg.AllowedClientIDs = nil
		}
	}
	if raw, ok := d.GetOk("audience"); ok {
		audience := strings.TrimSpace(raw.(string))
		if err := model.ValidateAudience(audience); err != nil {
			return logical.ErrorResponse("invalid audience %q: %s", audience, err), nil
		}
		cfg.Audience = audience
	}
	if raw, ok := d.GetOk("request_timeout"); ok {
		timeout := time.Duration(raw.(int)) * time.Second
		if timeout < time.Second || timeout > 5*time.Minute {
			return logical.ErrorResponse("request_timeout must be between 1s and 5m, got %s", timeout), nil
		}
		cfg.RequestTimeout = timeout
	}

	if raw, ok := d.GetOk("rate_limit"); ok {
		limit := raw.(float64)
		if !(limit >= 0.01 && limit <= 1000) { // NaN fails every comparison

			return logical.ErrorResponse("rate_limit must be between 0.01 and 1000 requests per second, got %g", limit), nil
		}
		cfg.RateLimit = limit
	}

	if raw, ok := d.GetOk("propagation_wait"); ok {
		wait := time.Duration(raw.(int)) * time.Second
		if wait < 0 || wait > 5*time.Minute {
			return logical.ErrorResponse("propagation_wait must be between 0 and 5m, got %s", wait), nil
		}
		cfg.PropagationWait = &wait
	}

	if raw, ok := d.GetOk("creds_cache_size"); ok {
		n := raw.(int)
		if n < 0 || n > engine.MaxCredsCacheSize {
			return logical.ErrorResponse("creds_cache_size must be between 0 (no cache) and %d, got %d", engine.MaxCredsCacheSize, n), nil
		}
		cfg.CredsCacheSize = &n
	}

	if raw, ok := d.GetOk("drift_check_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period != 0 && period < minDriftCheckPeriod {
			return logical.ErrorResponse("drift_check_period must be 0 (no drift checks) or at least %s, got %s", minDriftCheckPeriod, period), nil
		}
		cfg.DriftCheckPeriod = &period
	}

	if raw, ok := d.GetOk("metrics_role_labels"); ok {
		cfg.MetricsRoleLabels = raw.(bool)
	}

	if raw, ok := d.GetOk("token_refresh_fraction"); ok {
		f := raw.(float64)
		if !(f >= 0.1 && f <= 1) {
			return logical.ErrorResponse("token_refresh_fraction must be between 0.1 and 1 (the part of a token's lifetime after which it is refreshed), got %g", f), nil
		}
		cfg.TokenRefreshFraction = f
	}

	if raw, ok := d.GetOk("root_rotation_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period != 0 && period < model.MinRotationPeriod {
			return logical.ErrorResponse("root_rotation_period must be 0 (no automatic root rotation) or at least %s, got %s", model.MinRotationPeriod, period), nil
		}
		cfg.RootRotationPeriod = period
		cfg.NextRootRotation = time.Time{}
		if period > 0 {
			from := cfg.LastRootRotation
			if from.IsZero() {
				from = b.Clock.Now().UTC()
			}
			cfg.NextRootRotation = from.Add(period)
		}
	}

	if resp := b.ApplyRootKeyFields(ctx, req.Storage, cfg, d); resp != nil {
		return resp, nil
	}
	var missing []string
	required := map[string]string{"domain": cfg.Host, "client_id": cfg.ClientID}
	if !cfg.HasKey() {
		required["client_secret"] = cfg.ClientSecret
	}
	for field, value := range required {
		if value == "" {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		return logical.ErrorResponse("missing required field(s): %s", strings.Join(sortedStrings(missing), ", ")), nil
	}

	if d.Get("verify_connection").(bool) {
		if err := auth0api.VerifyCredentials(ctx, b.SettingsOf(cfg)); err != nil {
			b.Logger().Warn("config write refused: no Management API token", "domain", cfg.Domain(), "client_id", cfg.ClientID, "error", err)
			return logical.ErrorResponse("could not obtain a Management API token from %s with client_id %q: %s; nothing was stored (fix the credentials, or write with verify_connection=false to skip this check)",
				cfg.Domain(), cfg.ClientID, engine.DescribeTokenError(err)), nil
		}
	}

	// The Management API application must not be one a role rotates. Checked and stored
	// under ownerMu, as role writes claim applications, so the two cannot race.
	// The tenant rule: roles' credentials go only to the domain they were bound under, so
	// a write that moves the mount while it has roles needs the operator to say so. Checked
	// under ownerMu too, as role writes claim applications under it.
	b.OwnerMu.Lock()
	owner, err := engine.LiveOwner(ctx, req.Storage, cfg.ClientID)
	var moved string
	if err == nil && owner == "" && !d.Get("allow_domain_change").(bool) {
		moved, err = model.TenantMove(ctx, req.Storage, model.TenantEntry{Scheme: prevScheme, Host: prevHost}, cfg)
	}
	if err == nil && owner == "" && moved == "" {
		// The tenant first: what it records is a move already allowed.
		if err = model.StoreTenant(ctx, req.Storage, cfg); err == nil {
			err = model.StoreConfig(ctx, req.Storage, cfg)
		}
	}
	b.OwnerMu.Unlock()
	if err != nil {
		return nil, err
	}
	if owner != "" {
		return logical.ErrorResponse("client_id %q is the application of role %q, whose secret the engine rotates; the Management API application must be a separate application (or delete that role first); nothing was stored", cfg.ClientID, owner), nil
	}
	if moved != "" {
		return logical.ErrorResponse("the mount has roles bound under domain %s; their secrets and keys are sent only there, so changing domain to %s is refused (nothing was stored). If %s is the same tenant under another name (e.g. its custom domain), write again with allow_domain_change=true; otherwise mount the engine anew for the other tenant", moved, cfg.Domain(), cfg.Domain()), nil
	}
	b.Tokens.DropAll()
	b.ScheduleDriftSweep(cfg)
	b.Metrics.SetRoleLabels(cfg.MetricsRoleLabels)
	b.ResetConnection()
	if cfg.UsesKey() && !cfg.HasKey() {
		// The first key, now: made with the client secret, which Auth0 refuses after it.
		resp, err := b.RunRootKeyLocked(ctx, req.Storage, cfg, engine.TriggerManual, engine.RotateOptions{})
		b.ScheduleRoot(cfg)
		if resp != nil || err != nil {
			return resp, err
		}
		b.Logger().Info("the Management API application now authenticates with its private_key_jwt key; the mount holds no client secret", "client_id", cfg.ClientID)
		return nil, nil
	}
	b.ScheduleRoot(cfg)
	return nil, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.ConfigMu.Lock()
	defer b.ConfigMu.Unlock()
	// The tenant entry stays: a later config for another domain is refused while roles exist.
	if err := req.Storage.Delete(ctx, model.ConfigStoragePath); err != nil {
		return nil, fmt.Errorf("deleting config: %w", err)
	}
	b.Tokens.DropAll()
	b.ScheduleDriftSweep(nil)
	b.ResetConnection()
	b.ScheduleRoot(nil)
	return nil, nil
}

const configWriteSummary = "Write the Management API connection, checked against Auth0 first."

// configReadResponses documents a config read (OpenAPI, docs/API.md).
var configReadResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"domain":                     {Type: framework.TypeString, Description: "Auth0 domain the engine calls."},
		"client_id":                  {Type: framework.TypeString, Description: "Client ID of the Management API application."},
		"audience":                   {Type: framework.TypeString, Description: "Management API audience in use (the default when none was written)."},
		"request_timeout":            {Type: framework.TypeInt64, Description: "Timeout of each HTTP request to Auth0, in seconds."},
		"rate_limit":                 {Type: framework.TypeFloat, Description: "Management API requests per second for the whole mount."},
		"root_rotation_period":       {Type: framework.TypeInt64, Description: "Seconds between automatic rotations of the Management API secret; 0: none."},
		"token_refresh_fraction":     {Type: framework.TypeFloat, Description: "Part of an access token's lifetime after which token/<name> refreshes it."},
		"creds_cache_size":           {Type: framework.TypeInt, Description: "Roles whose creds entries each node caches; 0: no cache."},
		"propagation_wait":           {Type: framework.TypeInt64, Description: "Seconds a new private_key_jwt key is attached at Auth0 before creds serve it."},
		"metrics_role_labels":        {Type: framework.TypeBool, Description: "Whether auth0/metrics labels per-role series with role names."},
		"drift_check_period":         {Type: framework.TypeInt64, Description: "Seconds between two drift checks of a role's credential against Auth0; 0: none."},
		"last_root_rotation":         {Type: framework.TypeTime, Description: "When the Management API secret was last rotated by Vault (RFC 3339); absent if never."},
		"next_root_rotation":         {Type: framework.TypeTime, Description: "When the next scheduled root rotation is due; only with root_rotation_period."},
		"last_root_rotation_failure": {Type: framework.TypeMap, Description: "While root rotations fail: time and message of the last failure, since (first failure of the run), consecutive_failures and next_attempt."},
		"credential_type":            {Type: framework.TypeString, Description: `How the mount authenticates to the Management API: "client_secret" or "private_key_jwt".`},
		"root_overlap_period":        {Type: framework.TypeInt64, Description: "private_key_jwt: seconds the previous key stays attached after config/rotate-root."},
		"key_id":                     {Type: framework.TypeString, Description: "private_key_jwt: Auth0 credential id of the mount's current key."},
		"kid":                        {Type: framework.TypeString, Description: "private_key_jwt: key id of the mount's current key."},
		"previous_key_ids":           {Type: framework.TypeStringSlice, Description: "private_key_jwt, during an overlap: Auth0 credential ids of the previous keys still attached."},
		"overlap_until":              {Type: framework.TypeTime, Description: "private_key_jwt, during an overlap: when the previous key is detached."},
		"pending_version":            {Type: framework.TypeInt, Description: "private_key_jwt: version of a new key being registered or attached, not yet in use."},
	},
}}}

const pathConfigHelpSyn = `Configure the connection to Auth0's Management API.`

const pathConfigHelpDesc = `
The engine calls Auth0's Management API with the credentials of a machine-to-machine
application. Grant that application these Management API scopes:

  update:client_keys   rotate application secrets (and the mount's own, rotate-root)
  read:clients         check that a role's application exists
  read:client_keys     import current secrets and recover interrupted rotations

and for private_key_jwt roles: update:clients, create:client_credentials,
read:client_credentials, update:client_credentials, delete:client_credentials.
docs/recipes/terraform-auth0.md gives the least privilege per feature.

By default a write first obtains a Management API token with the given credentials
(verify_connection=true); if Auth0 refuses them the write fails and nothing is stored.
The client_secret is write-only: it is never returned by a read and never logged. A write
that changes domain or client_id must bring client_secret too: the stored secret is never
sent anywhere else than where it was written for.

The tenant rule: roles' secrets and keys are only ever sent to the domain the mount had
when they were bound. While the mount has roles, a write that changes domain (also after
a config delete) is refused unless it says allow_domain_change=true, meant for the same
tenant under another name (its custom domain). No request follows a redirect, goes to
another host, or connects to an unspecified, link-local, multicast or broadcast address.
Every config write drops the mount's cached access tokens.

allowed_client_ids limits the applications this mount's roles may bind and rotate (client
IDs, and globs where "*" matches any run of characters; default: any): checked on every
role write and at every rotation.

client_id must be an application of its own: a write naming the application of one of
this mount's roles is refused (rotating it from a role would cut the engine off). Read
shows last_root_rotation, next_root_rotation when root_rotation_period is set, and
last_root_rotation_failure (time, message, consecutive_failures, next_attempt) while root
rotations fail.

credential_type=private_key_jwt makes the mount hold no shared secret at all: Vault
generates a key, registers and attaches it to the Management API application (in the
same PATCH that switches the application off its client secret: one way, Auth0 refuses
the secret after it), signs its token requests with it, and config/rotate-root rotates it
with an overlap of root_overlap_period (default 24h). The first key is made with the
client_secret given in the same write, or with the one stored (migrating a mount is this
one write); a cut-short switch is finished by the next root job. Or give private_key and
key_id of a key you registered and attached yourself. It needs, besides the scopes above,
update:clients and create:, read:, update: and delete:client_credentials on the
application itself (Auth0 Enterprise plans offer private_key_jwt). Read then shows
credential_type, key_id, kid, root_overlap_period and, during an overlap,
previous_key_ids and overlap_until; never the key.

Example:

  vault write auth0/config domain=acme.eu.auth0.com \
      client_id=... client_secret=...
  vault write auth0/config credential_type=private_key_jwt   # then no secret is held
`
