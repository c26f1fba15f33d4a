package apidoc

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Problems lists what doc leaves undocumented under mount: a path without a synopsis, an
// operation without a summary or description, a parameter, request field or response
// field without a description, or a schema reference that does not resolve.
func Problems(doc *Document, mount string) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, p := range doc.mountPaths(mount) {
		item := doc.Paths[p]
		if strings.TrimSpace(item.Description) == "" {
			add("%s: no synopsis (HelpSynopsis)", p)
		}
		ops := methods(item)
		if len(ops) == 0 {
			add("%s: no operation", p)
		}
		for _, pa := range item.Parameters {
			if strings.TrimSpace(pa.Description) == "" {
				add("%s: path parameter %s has no description", p, pa.Name)
			}
		}
		for _, m := range ops {
			where := m.name + " " + p
			if strings.TrimSpace(m.op.Summary) == "" && strings.TrimSpace(m.op.Description) == "" {
				add("%s: no summary or description", where)
			}
			for _, pa := range m.op.Parameters {
				if strings.TrimSpace(pa.Description) == "" {
					add("%s: parameter %s has no description", where, pa.Name)
				}
			}
			if m.op.RequestBody != nil {
				s, err := doc.bodySchema(m.op.RequestBody.Content)
				if err != nil {
					add("%s: request body: %v", where, err)
				}
				out = append(out, undescribed(where+": request field", s)...)
			}
			if len(m.op.Responses) == 0 {
				add("%s: no response", where)
			}
			for code, r := range m.op.Responses {
				if strings.TrimSpace(r.Description) == "" {
					add("%s: response %s has no description", where, code)
				}
				s, err := doc.bodySchema(r.Content)
				if err != nil {
					add("%s: response %s: %v", where, code, err)
				}
				out = append(out, undescribed(where+": response "+code+" field", s)...)
			}
		}
	}
	return out
}

func undescribed(what string, s *Schema) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		if strings.TrimSpace(s.Properties[name].Description) == "" {
			out = append(out, fmt.Sprintf("%s %s has no description", what, name))
		}
	}
	return out
}

// Endpoint is what one operation of a path takes and answers.
type Endpoint struct {
	Params   []string // path and query parameters and request fields, as Markdown lists them
	Response []string // fields of the 200 response, sorted
}

// Endpoints lists doc's operations under mount by "<operation> <path>", as the Markdown
// heads them: "read auth0/creds/:name", "create/update auth0/config", "list auth0/roles/".
func Endpoints(doc *Document, mount string) (map[string]Endpoint, error) {
	out := map[string]Endpoint{}
	for _, p := range doc.mountPaths(mount) {
		item := doc.Paths[p]
		for _, m := range methods(item) {
			key := opName(item, m) + " " + display(p)
			fields, err := requestFields(doc, item, m.op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			var e Endpoint
			for _, f := range fields {
				e.Params = append(e.Params, f.name)
			}
			if r := m.op.Responses["200"]; r != nil {
				s, err := doc.bodySchema(r.Content)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
				if s != nil {
					e.Response = slices.Sorted(maps.Keys(s.Properties))
				}
			}
			out[key] = e
		}
	}
	return out, nil
}
