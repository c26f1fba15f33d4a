package auth0

import (
	"context"
	"errors"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRotate(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "rotate/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "rotate",
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role to rotate.",
					Required:    true,
				},
				"switch_now": {
					Type:        framework.TypeBool,
					Description: "Staged roles: stage a next secret if none is staged, and switch to it now instead of at next_switch_time.",
				},
				"cancel_staged": {
					Type:        framework.TypeBool,
					Description: "Staged roles: discard the staged next secret. It never reached Auth0, so cancelling changes nothing there.",
				},
				"end_overlap": {
					Type:        framework.TypeBool,
					Description: "private_key_jwt roles: detach and delete the previous key now, before overlap_period ends, then rotate. Applications still signing with the previous key fail from then on.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathRotateWrite,
					Summary:                     "Rotate a role's credential now (stage, switch or cancel for staged roles).",
					Description:                 pathRotateHelpDesc,
					Responses:                   rotateResponses,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    pathRotateHelpSyn,
			HelpDescription: pathRotateHelpDesc,
		},
		{
			Pattern: "config/rotate-root",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "rotate",
				OperationSuffix: "root-credentials",
			},
			Fields: map[string]*framework.FieldSchema{
				"end_overlap": {
					Type:        framework.TypeBool,
					Description: "credential_type=private_key_jwt: detach and delete the previous key now, then rotate (Auth0 keeps two credentials per application).",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:    b.pathRotateRootWrite,
					Summary:     "Rotate the Management API application's own client secret now.",
					Description: pathRotateRootHelpDesc,
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							"last_root_rotation": {Type: framework.TypeTime, Description: "When the rotation completed (RFC 3339)."},
							"next_root_rotation": {Type: framework.TypeTime, Description: "When the next scheduled root rotation is due; only with root_rotation_period."},
							"key_id":             {Type: framework.TypeString, Description: "private_key_jwt: Auth0 credential id of the mount's key now in use."},
							"kid":                {Type: framework.TypeString, Description: "private_key_jwt: its key id."},
							"overlap_until":      {Type: framework.TypeTime, Description: "private_key_jwt: when the previous key is detached."},
							"pending_version":    {Type: framework.TypeInt, Description: "private_key_jwt: a new key attached at Auth0 and not yet in use, while Auth0 applies it (propagation_wait)."},
						},
					}}},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    pathRotateRootHelpSyn,
			HelpDescription: pathRotateRootHelpDesc,
		},
	}
}

func (b *backend) pathRotateRootWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	opts := engine.RotateOptions{EndOverlap: d.Get("end_overlap").(bool)}
	cfg, resp, err := b.RunRootJobWith(ctx, req.Storage, engine.TriggerManual, opts)
	if resp != nil || err != nil {
		return resp, err
	}
	data := map[string]interface{}{}
	engine.AddTime(data, "last_root_rotation", cfg.LastRootRotation)
	if cfg.RootRotationPeriod > 0 {
		engine.AddTime(data, "next_root_rotation", cfg.NextRootRotation)
	}
	if r := cfg.RootKey; cfg.UsesKey() && r != nil {
		if cur := r.Current(); cur != nil {
			data["key_id"], data["kid"] = cur.KeyID, cur.KID
		}
		if ov := r.Overlap; ov != nil {
			engine.AddTime(data, "overlap_until", ov.Until)
		}
		if pk := r.PendingKey; pk != nil {
			data["pending_version"] = pk.Version
		}
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	opts := engine.RotateOptions{SwitchNow: d.Get("switch_now").(bool), CancelStaged: d.Get("cancel_staged").(bool), EndOverlap: d.Get("end_overlap").(bool)}
	if opts.SwitchNow && opts.CancelStaged {
		return logical.ErrorResponse("switch_now and cancel_staged exclude each other"), nil
	}
	role, version, resp, err := b.RunRoleJobWith(ctx, req.Storage, name, engine.TriggerManual, opts)
	switch {
	case errors.Is(err, engine.ErrRoleNotFound):
		return logical.ErrorResponse("role %q does not exist; create it first: vault write <mount>/roles/%s client_id=...", name, name), nil
	case resp != nil || err != nil:
		return resp, err
	}
	if version == nil {
		// A staged role that published (or kept, or cancelled) its next secret, or a key
		// role whose new key is attached and waits for Auth0's propagation.
		data := map[string]interface{}{"version": role.CurrentVersion()}
		resp = &logical.Response{Data: data}
		if pk := role.PendingKey; pk != nil {
			data["pending_version"] = pk.Version
			data["key_id"], data["kid"] = pk.CredentialID, pk.KID
			engine.AddTime(data, "publish_time", pk.PublishAt)
			return resp, nil
		}
		if st := role.Staged; st != nil {
			data["next_version"] = st.Version
			engine.AddTime(data, "next_switch_time", st.SwitchTime)
		} else if opts.CancelStaged && len(role.Cancelled) > 0 {
			data["cancelled_version"] = role.Cancelled[len(role.Cancelled)-1].Version
		} else if opts.CancelStaged {
			resp.AddWarning("no secret was staged; nothing to cancel")
		}
		return resp, nil
	}
	data := map[string]interface{}{"version": version.Version}
	if version.KeyID != "" {
		data["key_id"], data["kid"] = version.KeyID, version.KID
		if ov := role.Overlap; ov != nil {
			data["previous_key_ids"] = ov.CredentialIDs
			engine.AddTime(data, "overlap_until", ov.Until)
		}
	}
	engine.AddTime(data, "last_vault_rotation", role.LastVaultRotation)
	engine.AddTime(data, "next_vault_rotation", role.NextVaultRotation)
	resp = &logical.Response{Data: data}
	if version.Source == model.SourceRecovered {
		resp.AddWarning("Auth0's answer to the rotation was lost; Vault read the new secret back from Auth0 and stored it (source \"recovered\")")
	}
	if role.Warning != "" {
		resp.AddWarning(role.Warning)
	}
	return resp, nil
}

// rotateResponses documents a rotation's answer (OpenAPI, docs/API.md); never a secret.
var rotateResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"version":             {Type: framework.TypeInt, Description: "The new current version; the unchanged current one when a staged role only staged or cancelled, or a new key waits for publish_time."},
		"last_vault_rotation": {Type: framework.TypeTime, Description: "When the new version was made (RFC 3339)."},
		"next_vault_rotation": {Type: framework.TypeTime, Description: "When the next scheduled rotation is due; only when scheduled."},
		"next_version":        {Type: framework.TypeInt, Description: "Staged roles: version of the staged next secret."},
		"next_switch_time":    {Type: framework.TypeTime, Description: "Staged roles: when the staged secret becomes current."},
		"cancelled_version":   {Type: framework.TypeInt, Description: "With cancel_staged=true: the version discarded."},
		"key_id":              {Type: framework.TypeString, Description: "private_key_jwt roles: Auth0 credential id of the new key."},
		"kid":                 {Type: framework.TypeString, Description: "private_key_jwt roles: key id of the new key."},
		"previous_key_ids":    {Type: framework.TypeStringSlice, Description: "private_key_jwt roles: Auth0 credential ids of the previous keys, attached until overlap_until."},
		"overlap_until":       {Type: framework.TypeTime, Description: "private_key_jwt roles: when the previous key is detached."},
		"pending_version":     {Type: framework.TypeInt, Description: "private_key_jwt roles: version of the new key, attached at Auth0 and served from publish_time."},
		"publish_time":        {Type: framework.TypeTime, Description: "private_key_jwt roles: when the pending key is served (after config's propagation_wait)."},
	},
}}}

const pathRotateHelpSyn = `Rotate a role's Auth0 client secret now.`

const pathRotateHelpDesc = `
For a role with rotation_strategy=staged (zero downtime): stages a next secret if none is
staged, generated by Vault and published as next_client_secret, to switch at now +
stage_period; if one is staged already, changes nothing. It answers next_version and
next_switch_time, never a secret. switch_now=true stages if needed and switches now
(PATCH of client_secret at Auth0); cancel_staged=true discards the staged secret, which
never reached Auth0.

For a private_key_jwt role: generates a new RSA key pair, registers its public key at
Auth0 and attaches it next to the current key, proves Auth0 accepts it, and makes it the
current version; the previous key stays attached until overlap_until (overlap_period),
then Vault detaches and deletes it. While it is attached a rotation is refused, since
Auth0 keeps two keys per application, unless end_overlap=true detaches it first. The
response carries version, key_id, kid and overlap_until, never the private key.

For an immediate role (the default), calls Auth0's rotate-secret for the role's application and stores the new secret as the
next version. Auth0 invalidates the old secret at once; creds/<name> serves the new one,
with the old one as previous_client_secret while it is retained.

If an earlier rotation of the role was left unresolved (its answer was lost, or Vault
could not store the new secret), it is resolved first: no second Auth0 change starts while
one is unresolved. A failure is recorded on the role (last_rotation_failure).

The response carries the new version number and the rotation times, never the secret,
so a policy may allow rotating without allowing reading:

  path "auth0/rotate/myapp" { capabilities = ["update"] }
`

const pathRotateRootHelpSyn = `Rotate the Management API application's own client secret.`

const pathRotateRootHelpDesc = `
Replaces the secret of the machine-to-machine application the engine uses (config's
client_id), so that no human holds it any more. Needs the update:client_keys scope.

Vault generates the new secret, stores it as pending before telling Auth0, sets it with
PATCH /api/v2/clients/{id}, proves it by obtaining a token with it, and only then makes
it current and drops the old one. If Vault stops part-way, the next start (or the next
rotate-root) tries the pending secret, then the old one, and finishes or rolls back the
rotation; the log says which. A rotation that ends in a rollback answers an error that
says so and is recorded on config (last_root_rotation_failure). The response carries
last_root_rotation, never the secret.

Set root_rotation_period on config to rotate it on a schedule.

A mount with credential_type=private_key_jwt rotates its key instead, as a key role does:
the new key is stored as pending, registered, attached next to the current one, proven by
a Management API token signed with it, and made current; the previous key stays attached
for root_overlap_period, then is detached and deleted. During that overlap rotate-root is
refused unless end_overlap=true (Auth0 keeps two credentials per application). The
response adds key_id, kid and overlap_until.
`
