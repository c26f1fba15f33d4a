package auth0

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "roles/"

// roleEntry binds a Vault name to one Auth0 application. It holds the role's definition,
// its rotation state and its retained secret versions: one entry, written whole, so a
// rotation is atomic and creds costs one storage read.
type roleEntry struct {
	ClientID         string        `json:"client_id"`
	RotationPeriod   time.Duration `json:"rotation_period,omitempty"`
	RotationSchedule string        `json:"rotation_schedule,omitempty"`
	RotationWindow   time.Duration `json:"rotation_window,omitempty"`
	MaxVersions      int           `json:"max_versions"`

	Versions          []*secretVersion `json:"versions,omitempty"`
	LastVaultRotation time.Time        `json:"last_vault_rotation,omitempty"`
	NextVaultRotation time.Time        `json:"next_vault_rotation,omitempty"`
	LastFailure       *rotationFailure `json:"last_failure,omitempty"`
	// Warning is something the operator should act on, e.g. a scope to grant.
	Warning string `json:"warning,omitempty"`
}

// rotationFailure records why the last rotation attempt failed; cleared by a success.
type rotationFailure struct {
	Time                time.Time `json:"time"`
	Message             string    `json:"message"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
}

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
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
					Description: fmt.Sprintf("Rotate automatically this long after the last rotation (e.g. \"720h\"). 0 or unset: no automatic rotation. At least %s. Mutually exclusive with rotation_schedule.", minRotationPeriod),
				},
				"rotation_schedule": {
					Type:        framework.TypeString,
					Description: `Rotate automatically on this standard 5-field cron schedule, in UTC (e.g. "0 3 * * SUN"). Mutually exclusive with rotation_period; an empty value removes it.`,
				},
				"rotation_window": {
					Type:        framework.TypeDurationSecond,
					Description: fmt.Sprintf("Only with rotation_schedule: how long after a scheduled time a rotation may still start; a missed window waits for the next scheduled time. At least %s; unset means no limit.", minRotationWindow),
				},
				"max_versions": {
					Type:        framework.TypeInt,
					Description: fmt.Sprintf("How many secret versions are retained, oldest removed first. Default %d, at most %d.", defaultMaxVersions, maxMaxVersions),
				},
				"import_current_secret": {
					Type:        framework.TypeBool,
					Description: "Only on create: store the application's current Auth0 secret as version 1 instead of waiting for the first rotation (needs the read:client_keys scope).",
					Default:     false,
				},
			},
			ExistenceCheck: b.pathRoleExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete},
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
				logical.ListOperation: &framework.PathOperation{Callback: b.pathRoleList},
			},
			HelpSynopsis:    pathRolesListHelpSyn,
			HelpDescription: pathRolesListHelpDesc,
		},
	}
}

func loadRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading role %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	role := new(roleEntry)
	if err := entry.DecodeJSON(role); err != nil {
		return nil, fmt.Errorf("decoding role %q: %w", name, err)
	}
	return role, nil
}

func saveRole(ctx context.Context, s logical.Storage, name string, role *roleEntry) error {
	entry, err := logical.StorageEntryJSON(roleStoragePrefix+name, role)
	if err != nil {
		return fmt.Errorf("encoding role %q: %w", name, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing role %q: %w", name, err)
	}
	return nil
}

func (b *backend) pathRoleExistenceCheck(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := loadRole(ctx, req.Storage, d.Get("name").(string))
	return role != nil, err
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, err := loadRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	data := map[string]interface{}{
		"client_id":         role.ClientID,
		"rotation_period":   int64(role.RotationPeriod.Seconds()),
		"rotation_schedule": role.RotationSchedule,
		"rotation_window":   int64(role.RotationWindow.Seconds()),
		"max_versions":      role.MaxVersions,
		"current_version":   0,
	}
	if latest := role.latest(); latest != nil {
		data["current_version"] = latest.Version
	}
	addTime(data, "last_vault_rotation", role.LastVaultRotation)
	addTime(data, "next_vault_rotation", role.NextVaultRotation)
	if role.Warning != "" {
		data["warning"] = role.Warning
	}
	if f := role.LastFailure; f != nil {
		data["last_rotation_failure"] = map[string]interface{}{
			"time":                 f.Time.Format(time.RFC3339),
			"message":              f.Message,
			"consecutive_failures": f.ConsecutiveFailures,
		}
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()

	role, err := loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	creating := role == nil
	if creating {
		role = &roleEntry{MaxVersions: defaultMaxVersions}
	}
	oldSchedule, oldPeriod := role.RotationSchedule, role.RotationPeriod

	if resp := applyRoleFields(role, d, creating); resp != nil {
		return resp, nil
	}

	now := time.Now().UTC()
	if creating {
		conn, resp, err := b.requireConnection(ctx, req.Storage)
		if resp != nil || err != nil {
			return resp, err
		}
		importSecret := d.Get("import_current_secret").(bool)
		info, err := conn.client.ReadClient(ctx, role.ClientID, importSecret)
		if err != nil {
			return auth0Failure(fmt.Sprintf("checking client_id %q in Auth0", role.ClientID), err)
		}
		if importSecret {
			role.addVersion(info.Secret, sourceImport, now)
		}
	}

	if creating || role.RotationSchedule != oldSchedule || role.RotationPeriod != oldPeriod {
		from := role.LastVaultRotation
		if from.IsZero() || role.RotationSchedule != "" {
			from = now
		}
		role.NextVaultRotation = role.nextRotation(from)
	}

	if err := saveRole(ctx, req.Storage, name, role); err != nil {
		return nil, err
	}
	b.schedule(name, role)
	return nil, nil
}

// applyRoleFields validates the request's fields and applies them to role. It returns an
// error response, and leaves storage untouched, on any invalid value.
func applyRoleFields(role *roleEntry, d *framework.FieldData, creating bool) *logical.Response {
	if raw, ok := d.GetOk("client_id"); ok {
		clientID := strings.TrimSpace(raw.(string))
		switch {
		case clientID == "":
			return logical.ErrorResponse("client_id must not be empty")
		case !creating && clientID != role.ClientID:
			return logical.ErrorResponse("client_id cannot be changed (role has %q); delete the role and create it again to manage another application", role.ClientID)
		}
		role.ClientID = clientID
	}
	if creating && role.ClientID == "" {
		return logical.ErrorResponse("client_id is required: the client ID of the Auth0 application whose secret this role manages")
	}
	if _, ok := d.GetOk("import_current_secret"); ok && !creating {
		return logical.ErrorResponse("import_current_secret is accepted only when the role is created")
	}

	if raw, ok := d.GetOk("rotation_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period != 0 && period < minRotationPeriod {
			return logical.ErrorResponse("rotation_period must be 0 (no automatic rotation) or at least %s, got %s", minRotationPeriod, period)
		}
		role.RotationPeriod = period
	}
	if raw, ok := d.GetOk("rotation_schedule"); ok {
		spec := strings.TrimSpace(raw.(string))
		if spec != "" {
			if _, err := parseSchedule(spec); err != nil {
				return logical.ErrorResponse("invalid rotation_schedule %q: %s", spec, err)
			}
		} else if _, windowGiven := d.GetOk("rotation_window"); !windowGiven {
			role.RotationWindow = 0 // a window means nothing without a schedule
		}
		role.RotationSchedule = spec
	}
	if raw, ok := d.GetOk("rotation_window"); ok {
		window := time.Duration(raw.(int)) * time.Second
		if window != 0 && window < minRotationWindow {
			return logical.ErrorResponse("rotation_window must be 0 (no limit) or at least %s, got %s", minRotationWindow, window)
		}
		role.RotationWindow = window
	}
	if role.RotationPeriod > 0 && role.RotationSchedule != "" {
		return logical.ErrorResponse(`rotation_period and rotation_schedule are mutually exclusive; to switch, clear the other one in the same write (rotation_period=0 or rotation_schedule="")`)
	}
	if role.RotationWindow > 0 && role.RotationSchedule == "" {
		return logical.ErrorResponse("rotation_window is only valid with rotation_schedule")
	}

	if raw, ok := d.GetOk("max_versions"); ok {
		n := raw.(int)
		if n < 1 || n > maxMaxVersions {
			return logical.ErrorResponse("max_versions must be between 1 and %d, got %d", maxMaxVersions, n)
		}
		role.MaxVersions = n
		role.trimVersions()
	}
	return nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()
	if err := req.Storage.Delete(ctx, roleStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role %q: %w", name, err)
	}
	b.schedule(name, nil)
	return nil, nil
}

// addTime sets data[key] to t in RFC 3339, unless t is zero.
func addTime(data map[string]interface{}, key string, t time.Time) {
	if !t.IsZero() {
		data[key] = t.UTC().Format(time.RFC3339)
	}
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}

const pathRolesHelpSyn = `Bind a Vault role to an Auth0 application.`

const pathRolesHelpDesc = `
A role names one Auth0 application (client_id) whose client secret the engine owns.
On create the application is looked up in Auth0; an unknown client_id is refused and
nothing is stored.

A new role has no secret until it is rotated (vault write -f auth0/rotate/<name>, or its
first scheduled rotation, one rotation_period after creation), or, with
import_current_secret=true, the application's current secret is stored as version 1
without rotating. Creating a role never rotates: applications may still be using the
current secret.

Automatic rotation: set rotation_period (e.g. 720h) or rotation_schedule (5-field cron,
UTC, e.g. "0 3 * * SUN", optionally with rotation_window). max_versions (default 10)
bounds how many versions are retained.

Reading a role shows its settings, current_version, last_vault_rotation,
next_vault_rotation and the last rotation failure, never a secret. Deleting a role removes
it and all its versions from Vault; it never changes anything in Auth0.
`

const pathRolesListHelpSyn = `List the roles.`

const pathRolesListHelpDesc = `Lists the names of all roles of this mount.`
