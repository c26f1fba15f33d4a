package engine

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// The engine's own Management API credentials as private_key_jwt (config
// credential_type=private_key_jwt). The mount then holds no shared secret: it signs each
// Management API token request with a key it generated, attached to its own application's
// private_key_jwt method. The key is rotated like a key role's (runAttached, keys.go): the
// new key is stored as pending, registered, attached next to the current one, proven by
// a Management API token signed with it, and committed; the previous one stays attached
// for root_overlap_period, then is detached and deleted. Its state is a RoleEntry inside
// the config (RootKey), its private keys secret entries under secrets/@config/, and the
// holder below keeps both in the config entry.
//
// The first key comes from the client secret the mount authenticated with until then (a
// new config's, given once, or a stored one: the migration): the attachment switches the
// application to private_key_jwt in the same PATCH, after which Auth0 refuses the secret,
// and the config forgets it at the commit.

const (
	// RootKeyName names the root key's secret entries (secrets/@config/<n>); no role can
	// have it, as role names do not contain "@".
	RootKeyName = "@config"
)

// rootKeyHolder keeps the root key's state in the config entry.
type rootKeyHolder struct {
	b   *Engine
	s   logical.Storage
	cfg *model.ConfigEntry
}

func (*rootKeyHolder) describe() string { return "the Management API application" }

func (h *rootKeyHolder) storeState(ctx context.Context, next *model.RoleEntry) error {
	cp := *h.cfg
	cp.RootKey = next
	cp.RootFailures = next.FailureState
	if err := model.StoreConfig(ctx, h.s, &cp); err != nil {
		return err
	}
	*h.cfg = cp
	// The state may have moved the application to private_key_jwt (the first key's
	// attachment): the cached client's secret would be refused from now on.
	h.b.ResetConnection()
	return nil
}

// CommitVersion stores the new key's secret entry, then the config that authenticates
// with it (the commit point), retried whole on a storage error; the old secret goes.
func (h *rootKeyHolder) CommitVersion(ctx context.Context, role, next *model.RoleEntry, creds *model.CredsEntry, prune bool) error {
	cp := *h.cfg
	cp.RootKey = next
	cp.PrivateKey = creds.Current.PrivateKey
	cp.ClientSecret, cp.PendingClientSecret = "", "" // Auth0 refuses it since the first key
	cp.LastRootRotation, cp.NextRootRotation = next.LastVaultRotation, next.NextVaultRotation
	cp.RootFailures = next.FailureState
	err := h.b.retryStore(ctx, func() error {
		if err := model.SaveSecret(ctx, h.s, RootKeyName, creds.Current); err != nil {
			return err
		}
		return model.StoreConfig(ctx, h.s, &cp)
	})
	if err != nil {
		return err
	}
	*h.cfg = cp
	*role = *next
	if prune {
		h.b.PruneSecrets(ctx, h.s, RootKeyName, next)
	}
	h.b.ResetConnection()
	return nil
}

// RunRootKeyLocked is the root job of a mount on private_key_jwt (runRootJob): the key
// rotation of runAttached on the config's key state. The caller holds configMu.
func (b *Engine) RunRootKeyLocked(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry, trigger string, opts RotateOptions) (*logical.Response, error) {
	conn, err := b.rootKeyConnection(ctx, s, cfg)
	if err != nil {
		resp, rerr := rootFailure("rotating the Management API application's key", err)
		_, resp, rerr = b.failRoot(ctx, s, cfg, resp, rerr)
		return resp, rerr
	}
	defer conn.Client.Close()
	j := &roleJob{b: b, s: s, name: RootKeyName, role: cfg.RootKeyState(), trigger: trigger, opts: opts, now: b.Clock.Now(),
		hold: &rootKeyHolder{b: b, s: s, cfg: cfg}, conn: conn}
	_, resp, err := j.runAttached(ctx, keyKind{})
	return resp, err
}

// rootKeyConnection is a Management API client with the credentials Auth0 accepts now:
// the mount's current ones, or, when Auth0 refuses those while a key is pending (a
// cutover from the client secret cut short after its PATCH), the pending key. Without a
// pending key there is nothing to choose, and nothing is asked of Auth0 here.
func (b *Engine) rootKeyConnection(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry) (*connection, error) {
	use := cfg
	if pk := cfg.RootKey.PendingKeyIfAny(); pk != nil {
		if err := auth0api.VerifyCredentials(ctx, b.SettingsOf(cfg)); err != nil {
			if !auth0api.CredentialsRejected(err) {
				return nil, err
			}
			sec, serr := model.LoadSecret(ctx, s, RootKeyName, nil, pk.Version)
			if serr != nil || sec == nil || sec.PrivateKey == "" {
				return nil, fmt.Errorf("Auth0 refuses the mount's credentials (%s) and the pending key cannot be read: %v", DescribeTokenError(err), serr)
			}
			try := *cfg
			try.PrivateKey = sec.PrivateKey
			try.RootKey = cfg.RootKey.Clone()
			try.RootKey.Versions = append(try.RootKey.Versions, &model.VersionMeta{Version: pk.Version, KeyID: pk.CredentialID, KID: pk.KID, Algorithm: sec.Algorithm})
			if verr := auth0api.VerifyCredentials(ctx, b.SettingsOf(&try)); verr != nil {
				return nil, fmt.Errorf("Auth0 accepts neither the mount's credentials (%s) nor its pending key (%s)", DescribeTokenError(err), DescribeTokenError(verr))
			}
			use = &try
		}
	}
	client, err := b.newClient(b.ctx, use)
	if err != nil {
		return nil, err
	}
	return &connection{Config: use, Client: client}, nil
}

// ApplyRootKeyFields applies credential_type, root_overlap_period, private_key and key_id
// to the config being written, and answers an error response for what cannot be.
func (b *Engine) ApplyRootKeyFields(ctx context.Context, s logical.Storage, cfg *model.ConfigEntry, d *framework.FieldData) *logical.Response {
	_, secretGiven := d.GetOk("client_secret")
	if raw, ok := d.GetOk("credential_type"); ok {
		switch ct := strings.ToLower(strings.TrimSpace(raw.(string))); ct {
		case "", model.CredentialClientSecret:
			if cfg.UsesKey() {
				if !secretGiven {
					return logical.ErrorResponse("switching the mount back to credential_type=client_secret needs client_secret in the same write: Auth0 refuses the application's old secret since it moved to private_key_jwt; switch it back in Auth0 (Applications > the application > Credentials) and give its secret")
				}
				cfg.CredentialType, cfg.PrivateKey, cfg.RootKey = "", "", nil
			}
		case model.CredentialPrivateKeyJWT:
			cfg.CredentialType = ct
		default:
			return logical.ErrorResponse("credential_type must be %q or %q, got %q", model.CredentialClientSecret, model.CredentialPrivateKeyJWT, raw)
		}
	}
	if raw, ok := d.GetOk("root_overlap_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period < 0 || period > 7*24*time.Hour {
			return logical.ErrorResponse("root_overlap_period must be between 0 and 168h, got %s", period)
		}
		cfg.RootOverlapPeriod = &period
	}
	if secretGiven && cfg.HasKey() {
		return logical.ErrorResponse("the mount authenticates with its private_key_jwt key; client_secret applies only with credential_type=client_secret")
	}
	raw, keyGiven := d.GetOk("private_key")
	if !keyGiven {
		if _, ok := d.GetOk("key_id"); ok {
			return logical.ErrorResponse("key_id applies only with private_key")
		}
		return nil
	}
	if !cfg.UsesKey() {
		return logical.ErrorResponse("private_key applies only with credential_type=private_key_jwt")
	}
	keyID := strings.TrimSpace(d.Get("key_id").(string))
	if keyID == "" {
		return logical.ErrorResponse("private_key needs key_id: the Auth0 credential id under which the key is registered (Auth0 Dashboard > Applications > the application > Credentials)")
	}
	privatePEM := raw.(string)
	if _, err := auth0api.ParsePrivateKey(privatePEM); err != nil {
		return logical.ErrorResponse("private_key must be an RSA private key in PEM (PKCS #8): %v", err)
	}
	// The key must work, and Auth0 says under which kid and algorithm it holds it.
	try := *cfg
	try.PrivateKey, try.ClientSecret, try.PendingClientSecret = privatePEM, "", ""
	try.RootKey = &model.RoleEntry{Layout: model.RoleLayout, MaxVersions: 2, CredentialType: model.CredentialPrivateKeyJWT,
		Versions: []*model.VersionMeta{{Version: 1, KeyID: keyID, Algorithm: auth0api.AlgRS256, Source: model.SourceImport, CreatedTime: b.Clock.Now().UTC()}}}
	client, err := b.newClient(ctx, &try)
	if err != nil {
		return logical.ErrorResponse("private_key: %v", err)
	}
	defer client.Close()
	api, err := keyAPIOf(&connection{Config: &try, Client: client})
	if err != nil {
		return logical.ErrorResponse("private_key: %v", err)
	}
	stored, err := api.ListCredentials(ctx, cfg.ClientID)
	if err != nil {
		resp, rerr := Auth0Failure(fmt.Sprintf("checking the key of credential %s with Auth0", keyID), err)
		if resp == nil {
			resp = logical.ErrorResponse("%v", rerr)
		}
		return resp
	}
	for _, cred := range stored {
		if cred.ID == keyID {
			v := try.RootKey.Versions[0]
			v.KID, v.Algorithm = cred.KID, cred.Algorithm
			sec := &model.SecretEntry{Version: 1, PrivateKey: privatePEM, KeyID: keyID, KID: cred.KID, Algorithm: cred.Algorithm, CreatedTime: v.CreatedTime, Source: model.SourceImport}
			if err := model.SaveSecret(ctx, s, RootKeyName, sec); err != nil {
				return logical.ErrorResponse("storing the key: %v", err)
			}
			cfg.PrivateKey, cfg.ClientSecret, cfg.PendingClientSecret, cfg.RootKey = privatePEM, "", "", try.RootKey
			cfg.LastRootRotation = v.CreatedTime
			return nil
		}
	}
	return logical.ErrorResponse("Auth0 accepts the key, but the application has no credential %s; give the key_id Auth0 lists for it", keyID)
}

// RootKeyFields adds what a config read shows of the mount's key.
func RootKeyFields(c *model.ConfigEntry, data map[string]interface{}) {
	data["credential_type"] = CredentialTypeName(c.CredentialType)
	if !c.UsesKey() {
		return
	}
	data["root_overlap_period"] = int64(c.RootOverlapPeriodOrDefault().Seconds())
	r := c.RootKey
	if r == nil {
		return
	}
	if cur := r.Current(); cur != nil {
		data["key_id"], data["kid"] = cur.KeyID, cur.KID
	}
	if ov := r.Overlap; ov != nil {
		data["previous_key_ids"] = ov.CredentialIDs
		AddTime(data, "overlap_until", ov.Until)
	}
	if pk := r.PendingKey; pk != nil {
		data["pending_version"] = pk.Version
	}
}
