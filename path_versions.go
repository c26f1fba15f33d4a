package auth0

import (
	"context"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathVersions(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "versions/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "read",
				OperationSuffix: "versions",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathVersionsRead},
			},
			HelpSynopsis:    pathVersionsHelpSyn,
			HelpDescription: pathVersionsHelpDesc,
		},
	}
}

func (b *backend) pathVersionsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, err := loadRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	versions := make(map[string]interface{}, len(role.Versions))
	for _, v := range role.Versions {
		versions[strconv.Itoa(v.Version)] = map[string]interface{}{
			"created_time": v.CreatedTime.Format(time.RFC3339Nano),
			"source":       v.Source,
		}
	}
	data := map[string]interface{}{
		"current_version": 0,
		"oldest_version":  0,
		"max_versions":    role.MaxVersions,
		"versions":        versions,
	}
	if cur := role.current(); cur != nil {
		data["current_version"] = cur.Version
		data["oldest_version"] = role.Versions[0].Version
	}
	return &logical.Response{Data: data}, nil
}

const pathVersionsHelpSyn = `List the retained secret versions of a role, without secrets.`

const pathVersionsHelpDesc = `
Returns current_version, oldest_version, max_versions and, per retained version, its
created_time and source: how it came to be.

  rotate     vault write -f auth0/rotate/<name>
  scheduled  the role's rotation_period or rotation_schedule
  import     import_current_secret when the role was created
  recovered  read back from Auth0 after an interrupted rotation

Read a version's secret with: vault read auth0/creds/<name> version=N
`
