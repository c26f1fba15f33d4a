package apidoc

import (
	"encoding/json"
	"strings"
	"testing"
)

// A small document in the shape the SDK produces for a plugin mounted at auth0/.
const sample = `{
  "paths": {
    "/auth0/roles/": {
      "description": "List the roles.",
      "get": {
        "summary": "List the roles.",
        "parameters": [{"name": "list", "description": "Must be set to ` + "`true`" + `", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ListResponse"}}}}}
      }
    },
    "/auth0/roles/{name}": {
      "description": "Bind a role.",
      "x-vault-createSupported": true,
      "parameters": [{"name": "name", "description": "Name of the role.", "in": "path", "required": true, "schema": {"type": "string"}}],
      "post": {
        "summary": "Write a role.",
        "description": "Binds <name> to an application.\n\nExample:\n\n  vault write auth0/roles/app client_id=abc\n",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WriteRequest"}}}},
        "responses": {"200": {"description": "OK"}}
      },
      "delete": {"summary": "Delete a role.", "responses": {"204": {"description": "empty body"}}}
    },
    "/other/config": {"description": "Another mount.", "get": {"responses": {"200": {"description": "OK"}}}}
  },
  "components": {"schemas": {
    "ListResponse": {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "string"}, "description": "Names | of roles."}}},
    "WriteRequest": {"type": "object", "required": ["client_id"], "properties": {
      "client_id": {"type": "string", "description": "Client ID."},
      "secret": {"type": "string", "description": "A secret.", "x-vault-displayAttrs": {"sensitive": true}},
      "period": {"type": "string", "format": "duration", "default": 30, "description": ""}
    }}
  }}
}`

func parseSample(t *testing.T, raw string) *Document {
	t.Helper()
	doc, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestAPIDocMarkdown(t *testing.T) {
	md, err := Markdown(parseSample(t, sample), "auth0/")
	if err != nil {
		t.Fatal(err)
	}
	out := string(md)
	for _, want := range []string{
		"| [`auth0/roles/`](#auth0roles) | list | List the roles. |\n",
		"| [`auth0/roles/:name`](#auth0rolesname) | create/update, delete | Bind a role. |\n",
		"### list auth0/roles/\n\n`LIST /v1/auth0/roles/` · `vault list auth0/roles/`\n",
		"### create/update auth0/roles/:name\n\n`POST /v1/auth0/roles/:name` · `vault write auth0/roles/:name field=value ...`\n",
		"Binds &lt;name&gt; to an application.\n\nExample:\n\n```text\nvault write auth0/roles/app client_id=abc\n```\n",
		"| `name` | path | string |  | yes | Name of the role. |\n",
		"| `client_id` | body | string |  | yes | Client ID. |\n",
		"| `period` | body | string (duration) | `30` |  |  |\n",
		"| `secret` | body | string, sensitive |  |  | A secret. |\n",
		"| `keys` | array of string | Names \\| of roles. |\n",
		"### delete auth0/roles/:name\n\n`DELETE /v1/auth0/roles/:name` · `vault delete auth0/roles/:name`\n",
		"Response `204`: empty body\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "other/config") || strings.Contains(out, "| `list` |") {
		t.Errorf("another mount's path, or the list=true parameter, is documented:\n%s", out)
	}
}

func TestAPIDocProblems(t *testing.T) {
	got := Problems(parseSample(t, sample), "auth0/")
	want := []string{"post /auth0/roles/{name}: request field period has no description"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems %q, want %q", got, want)
	}
}

// Vault drops every "$ref" of an external plugin's document; Relink puts the names back,
// and the Markdown is the plugin's own again.
func TestAPIDocRelink(t *testing.T) {
	own := parseSample(t, sample)
	var tree any
	if err := json.Unmarshal([]byte(sample), &tree); err != nil {
		t.Fatal(err)
	}
	dropRefs(tree)
	stripped, _ := json.Marshal(tree)
	served := parseSample(t, string(stripped))
	if lossy, err := Markdown(served, "auth0/"); err != nil || strings.Contains(string(lossy), "| `client_id` |") {
		t.Fatalf("without references the request fields should be lost: %v\n%s", err, lossy)
	}
	restored := Relink(served, own)
	if len(restored) != 2 {
		t.Fatalf("restored %q, want the request and the list response", restored)
	}
	want, _ := Markdown(own, "auth0/")
	got, _ := Markdown(served, "auth0/")
	if string(got) != string(want) {
		t.Fatalf("relinked:\n%s\nown:\n%s", got, want)
	}
}

func dropRefs(v any) {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "$ref")
		for _, e := range v {
			dropRefs(e)
		}
	case []any:
		for _, e := range v {
			dropRefs(e)
		}
	}
}
