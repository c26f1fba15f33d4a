// Package crds checks the Kubernetes manifests of the consumer recipes in docs/recipes
// (Vault Secrets Operator, the Secrets Store CSI driver, External Secrets Operator) against
// the consumers' own definitions: their Go types, decoded strictly, and their
// CustomResourceDefinitions. It is a module of its own so that the plugin's go.mod never
// gains Kubernetes dependencies. This file reads the recipes; the checks are the tests.
package crds

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// marker is the line that names the fenced block after it, as in internal/vaulttest.
var marker = regexp.MustCompile(`^<!--\s*recipe:\s*([A-Za-z0-9_.-]+)\s*-->$`)

// Block is a fenced block that follows a `<!-- recipe: NAME -->` line.
type Block struct {
	Name string
	Lang string // the fence's info string: "yaml", "sh", ...
	Body string
	Line int // of the marker, 1-based
}

// ReadBlocks returns the marked blocks of the Markdown file at path, in order. Only blank
// lines may separate a marker from its fence; a marker without a block, a name used twice
// or an unclosed fence is an error.
func ReadBlocks(path string) ([]Block, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blocks, err := parseBlocks(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return blocks, nil
}

func parseBlocks(doc string) ([]Block, error) {
	lines := strings.Split(doc, "\n")
	var out []Block
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		m := marker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		b := Block{Name: m[1], Line: i + 1}
		if seen[b.Name] {
			return nil, fmt.Errorf("line %d: recipe %q marked twice", b.Line, b.Name)
		}
		seen[b.Name] = true
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j == len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[j]), "```") {
			return nil, fmt.Errorf("line %d: recipe %q is not followed by a fenced block", b.Line, b.Name)
		}
		open := strings.TrimSpace(lines[j])
		fence := open[:len(open)-len(strings.TrimLeft(open, "`"))]
		b.Lang = strings.TrimSpace(open[len(fence):])
		var body []string
		k := j + 1
		for ; k < len(lines) && strings.TrimSpace(lines[k]) != fence; k++ {
			body = append(body, lines[k])
		}
		if k == len(lines) {
			return nil, fmt.Errorf("line %d: the block of recipe %q is not closed", j+1, b.Name)
		}
		b.Body = strings.Join(body, "\n") + "\n"
		out = append(out, b)
		i = k
	}
	return out, nil
}

// Documents splits a YAML stream at its `---` separator lines, dropping empty documents.
func Documents(stream string) []string {
	var docs []string
	var cur []string
	flush := func() {
		if d := strings.Join(cur, "\n"); strings.TrimSpace(d) != "" {
			docs = append(docs, d+"\n")
		}
		cur = nil
	}
	for _, line := range strings.Split(stream, "\n") {
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}
