// Package apidoc turns the OpenAPI document Vault serves for a mount into docs/API.md.
//
// The document comes either from the backend itself, asked the way Vault asks it (a help
// request on the mount's root, see FromBackend), or from a running Vault
// (sys/internal/specs/openapi). Only what survives Vault 1.13's handling of an external
// plugin's document is rendered, so both sources give the same Markdown.
package apidoc

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// What docs/API.md documents: the plugin as Vault mounts it in the README's examples.
const (
	Mount      = "auth0/"
	PluginType = "vault-plugin-auth0"
)

// Document is the part of an OpenAPI 3 document that Vault fills for a plugin.
type Document struct {
	Paths      map[string]*PathItem `json:"paths"`
	Components struct {
		Schemas map[string]*Schema `json:"schemas"`
	} `json:"components"`
}

type PathItem struct {
	Description     string      `json:"description"`
	Parameters      []Parameter `json:"parameters"`
	CreateSupported bool        `json:"x-vault-createSupported"`
	Get             *Operation  `json:"get"`
	Post            *Operation  `json:"post"`
	Delete          *Operation  `json:"delete"`
}

type Operation struct {
	Summary     string               `json:"summary"`
	Description string               `json:"description"`
	Parameters  []Parameter          `json:"parameters"`
	RequestBody *Body                `json:"requestBody"`
	Responses   map[string]*Response `json:"responses"`
	Deprecated  bool                 `json:"deprecated"`
}

type Parameter struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	In          string  `json:"in"`
	Schema      *Schema `json:"schema"`
	Required    bool    `json:"required"`
	Deprecated  bool    `json:"deprecated"`
}

// Body is a request body; Response shares its content shape.
type Body struct {
	Content map[string]*MediaType `json:"content"`
}

type Response struct {
	Description string                `json:"description"`
	Content     map[string]*MediaType `json:"content"`
}

type MediaType struct {
	Schema *Schema `json:"schema"`
}

type Schema struct {
	Ref          string             `json:"$ref"`
	Type         string             `json:"type"`
	Format       string             `json:"format"`
	Description  string             `json:"description"`
	Properties   map[string]*Schema `json:"properties"`
	Required     []string           `json:"required"`
	Items        *Schema            `json:"items"`
	Enum         []any              `json:"enum"`
	Default      any                `json:"default"`
	Deprecated   bool               `json:"deprecated"`
	DisplayAttrs *struct {
		Sensitive bool `json:"sensitive"`
	} `json:"x-vault-displayAttrs"`
}

// Parse decodes an OpenAPI document (JSON).
func Parse(raw []byte) (*Document, error) {
	var doc Document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decoding the OpenAPI document: %w", err)
	}
	return &doc, nil
}

// FromBackend asks b for its OpenAPI document as Vault 1.13's sys/internal/specs/openapi
// does (a help request on the root, requestResponsePrefix set to the plugin type), and
// returns it with its paths under /mount, as Vault serves them.
func FromBackend(ctx context.Context, b logical.Backend, pluginType, mount string) (*Document, error) {
	resp, err := b.HandleRequest(ctx, &logical.Request{
		Operation: logical.HelpOperation,
		Storage:   &logical.InmemStorage{},
		Data:      map[string]interface{}{"requestResponsePrefix": pluginType},
	})
	if err != nil {
		return nil, fmt.Errorf("help request: %w", err)
	}
	if resp == nil || resp.Data["openapi"] == nil {
		return nil, fmt.Errorf("the backend answered no OpenAPI document")
	}
	// As over the plugin protocol: the document travels as JSON.
	raw, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		return nil, err
	}
	doc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	mounted := make(map[string]*PathItem, len(doc.Paths))
	for p, item := range doc.Paths {
		mounted["/"+mount+strings.TrimPrefix(p, "/")] = item
	}
	doc.Paths = mounted
	return doc, nil
}

// Spec builds a backend with factory, as Vault mounts it at Mount, and returns its
// document.
func Spec(ctx context.Context, factory logical.Factory) (*Document, error) {
	conf := &logical.BackendConfig{
		Logger: hclog.NewNullLogger(),
		System: &logical.StaticSystemView{
			// The root help names the Vault version; Markdown never shows it.
			PluginEnvironment: &logical.PluginEnvironment{VaultVersion: "unknown"},
		},
		Config: map[string]string{},
	}
	b, err := factory(ctx, conf)
	if err != nil {
		return nil, fmt.Errorf("creating the backend: %w", err)
	}
	defer b.Cleanup(ctx)
	return FromBackend(ctx, b, PluginType, Mount)
}

// Generate renders docs/API.md from the document of the backend factory builds.
func Generate(ctx context.Context, factory logical.Factory) ([]byte, error) {
	doc, err := Spec(ctx, factory)
	if err != nil {
		return nil, err
	}
	return Markdown(doc, Mount)
}

// Relink restores in served the schema references that Vault drops from an external
// plugin's document (hashicorp/vault#30714: it decodes the plugin's JSON with mapstructure,
// which matches "$ref" to no field), taking each reference's name from own, the plugin's
// document. The schemas themselves stay served's: Vault keeps them under components. It
// returns the references restored.
func Relink(served, own *Document) []string {
	var restored []string
	relink := func(where string, dst, src map[string]*MediaType) {
		for mt, s := range src {
			d := dst[mt]
			if s == nil || s.Schema == nil || s.Schema.Ref == "" || d == nil {
				continue
			}
			if d.Schema == nil {
				d.Schema = &Schema{}
			}
			if d.Schema.Ref == "" && d.Schema.Type == "" && len(d.Schema.Properties) == 0 {
				d.Schema.Ref = s.Schema.Ref
				restored = append(restored, where+": "+s.Schema.Ref)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(own.Paths)) {
		ownItem, item := own.Paths[p], served.Paths[p]
		if item == nil {
			continue
		}
		for _, m := range methods(ownItem) {
			op, ownOp := item.operation(m.name), m.op
			if op == nil {
				continue
			}
			if op.RequestBody != nil && ownOp.RequestBody != nil {
				relink(m.name+" "+p+" request", op.RequestBody.Content, ownOp.RequestBody.Content)
			}
			for code, r := range ownOp.Responses {
				if sr := op.Responses[code]; sr != nil {
					relink(m.name+" "+p+" "+code, sr.Content, r.Content)
				}
			}
		}
	}
	return restored
}

type method struct {
	name string // get, post or delete
	op   *Operation
}

// methods lists item's operations in a fixed order.
func methods(item *PathItem) []method {
	var out []method
	for _, m := range []method{{"get", item.Get}, {"post", item.Post}, {"delete", item.Delete}} {
		if m.op != nil {
			out = append(out, m)
		}
	}
	return out
}

func (item *PathItem) operation(name string) *Operation {
	switch name {
	case "get":
		return item.Get
	case "post":
		return item.Post
	case "delete":
		return item.Delete
	}
	return nil
}

// resolve follows s's reference, if any, into doc's components.
func (doc *Document) resolve(s *Schema) (*Schema, error) {
	if s == nil || s.Ref == "" {
		return s, nil
	}
	name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/")
	if !ok {
		return nil, fmt.Errorf("unsupported reference %q", s.Ref)
	}
	target := doc.Components.Schemas[name]
	if target == nil {
		return nil, fmt.Errorf("reference %q: no such schema", s.Ref)
	}
	return target, nil
}

// bodySchema is the resolved JSON schema of content, nil when it declares none.
func (doc *Document) bodySchema(content map[string]*MediaType) (*Schema, error) {
	mt := content["application/json"]
	if mt == nil || mt.Schema == nil {
		return nil, nil
	}
	return doc.resolve(mt.Schema)
}

// mountPaths are doc's paths under /mount, sorted.
func (doc *Document) mountPaths(mount string) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(doc.Paths)) {
		if strings.HasPrefix(p, "/"+mount) {
			out = append(out, p)
		}
	}
	return out
}
