package vaulttest

// Helpers for the tests of docs/recipes: extracting the snippets a recipe marks, a small
// reader for the Terraform (HCL) subset the recipes use, and an agent started with a
// recipe's own configuration.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recipeMarker is the line that names the fenced block right after it.
var recipeMarker = regexp.MustCompile(`^<!--\s*recipe:\s*([A-Za-z0-9_.-]+)\s*-->\s*$`)

// RecipeBlocks returns the fenced code blocks of the Markdown file at path (relative to
// the repository root) that follow a marker line `<!-- recipe: NAME -->`, by NAME. Only
// blank lines may separate a marker from its fence. A marker without a block, a name used
// twice or an unclosed fence fails the test.
func RecipeBlocks(t testing.TB, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), path))
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	blocks, err := parseRecipeBlocks(string(raw))
	if err != nil {
		t.Fatalf("vaulttest: %s: %v", path, err)
	}
	return blocks
}

// Recipe returns the block NAME of the Markdown file at path, failing the test if there
// is none.
func Recipe(t testing.TB, path, name string) string {
	t.Helper()
	b, ok := RecipeBlocks(t, path)[name]
	if !ok {
		t.Fatalf("vaulttest: %s has no block marked <!-- recipe: %s -->", path, name)
	}
	return b
}

func parseRecipeBlocks(doc string) (map[string]string, error) {
	lines := strings.Split(doc, "\n")
	out := map[string]string{}
	for i := 0; i < len(lines); i++ {
		m := recipeMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		name := m[1]
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d: recipe %q marked twice", i+1, name)
		}
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j == len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[j]), "```") {
			return nil, fmt.Errorf("line %d: recipe %q is not followed by a fenced block", i+1, name)
		}
		fence := strings.TrimSpace(lines[j])
		fence = fence[:len(fence)-len(strings.TrimLeft(fence, "`"))]
		var body []string
		k := j + 1
		for ; k < len(lines); k++ {
			if strings.TrimSpace(lines[k]) == fence {
				break
			}
			body = append(body, lines[k])
		}
		if k == len(lines) {
			return nil, fmt.Errorf("line %d: the block of recipe %q is not closed", j+1, name)
		}
		out[name] = strings.Join(body, "\n") + "\n"
		i = k
	}
	return out, nil
}

// StartAgentConfig runs a Vault Agent against v that authenticates with token
// (auto_auth method "token_file") and otherwise runs exactly body: a recipe's
// template_config and template stanzas. The caller rewrites any path in body
// first. The agent is stopped when the test ends.
func StartAgentConfig(t testing.TB, v *Vault, token, body string) *Agent {
	t.Helper()
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	configPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(tokenPath, []byte(token), 0o600); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vault {\n  address = %s\n}\n\n", hclString(v.Addr))
	fmt.Fprintf(&cfg, "auto_auth {\n  method \"token_file\" {\n    config = {\n      token_file_path = %s\n    }\n  }\n}\n\n", hclString(tokenPath))
	cfg.WriteString(body)
	if err := os.WriteFile(configPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	proc, err := startProcess("vault agent", v.Bin,
		[]string{"agent", "-config=" + configPath, "-log-level=trace"},
		childEnv(v.home), filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	t.Cleanup(func() { proc.stop(10 * time.Second) })
	logTailOnFailure(t, proc, 100)
	return &Agent{ConfigPath: configPath, proc: proc}
}

// HCL is the subset of HCL that the Terraform recipes use, read without Terraform:
// blocks with labels, attributes, and expressions that are literals (strings, numbers,
// bools), lists, objects, references (var.x, a.b.c, local.m[k]), function calls, and
// anything else (for expressions) kept as raw text.

// HCLBlock is a block: Type "label"... { Attrs; Blocks }.
type HCLBlock struct {
	Type   string
	Labels []string
	Attrs  []HCLAttr
	Blocks []*HCLBlock
}

// HCLAttr is name = Value.
type HCLAttr struct {
	Name  string
	Value HCLExpr
}

// HCLExprKind tells what an HCLExpr is.
type HCLExprKind int

const (
	HCLString HCLExprKind = iota // Str, with any ${...} left in it
	HCLNumber                    // Num
	HCLBool                      // Bool
	HCLNull
	HCLList   // List
	HCLObject // Attrs, in order
	HCLRef    // Raw: a traversal such as var.x or local.m[k]
	HCLCall   // Raw is the function name, List its arguments
	HCLRaw    // Raw: an expression this reader does not interpret
)

// HCLExpr is an expression.
type HCLExpr struct {
	Kind  HCLExprKind
	Str   string
	Num   float64
	Bool  bool
	List  []HCLExpr
	Attrs []HCLAttr
	Raw   string
}

// Attr returns the attribute name of b.
func (b *HCLBlock) Attr(name string) (HCLExpr, bool) {
	for _, a := range b.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return HCLExpr{}, false
}

// Field returns the attribute name of an object expression.
func (e HCLExpr) Field(name string) (HCLExpr, bool) {
	for _, a := range e.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return HCLExpr{}, false
}

// ParseHCL reads src, failing the test on anything outside the subset.
func ParseHCL(t testing.TB, src string) []*HCLBlock {
	t.Helper()
	p := &hclParser{src: src}
	blocks, err := p.body(true)
	if err != nil {
		t.Fatalf("vaulttest: reading HCL: %v", err)
	}
	return blocks.Blocks
}

// ResolveHCL evaluates e to JSON-like Go values (string, float64, bool, nil, []any,
// map[string]any): references and ${...} interpolations are looked up in refs,
// jsonencode(x) evaluates to x itself. Anything else is an error, so a recipe that
// starts using something new fails its test until the test knows it.
func ResolveHCL(e HCLExpr, refs map[string]any) (any, error) {
	switch e.Kind {
	case HCLString:
		return interpolate(e.Str, refs)
	case HCLNumber:
		return e.Num, nil
	case HCLBool:
		return e.Bool, nil
	case HCLNull:
		return nil, nil
	case HCLList:
		out := make([]any, 0, len(e.List))
		for _, x := range e.List {
			v, err := ResolveHCL(x, refs)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case HCLObject:
		out := make(map[string]any, len(e.Attrs))
		for _, a := range e.Attrs {
			v, err := ResolveHCL(a.Value, refs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a.Name, err)
			}
			out[a.Name] = v
		}
		return out, nil
	case HCLRef:
		v, ok := refs[e.Raw]
		if !ok {
			return nil, fmt.Errorf("unknown reference %s", e.Raw)
		}
		return v, nil
	case HCLCall:
		if e.Raw == "jsonencode" && len(e.List) == 1 {
			return ResolveHCL(e.List[0], refs)
		}
		return nil, fmt.Errorf("function %s() is not evaluated here", e.Raw)
	}
	return nil, fmt.Errorf("expression %q is not evaluated here", e.Raw)
}

var interpolation = regexp.MustCompile(`\$\{([^}]*)\}`)

func interpolate(s string, refs map[string]any) (any, error) {
	var err error
	out := interpolation.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		v, ok := refs[name]
		if !ok {
			err = fmt.Errorf("unknown reference ${%s}", name)
			return m
		}
		return fmt.Sprint(v)
	})
	return out, err
}

type hclParser struct {
	src string
	pos int
}

func (p *hclParser) errorf(format string, args ...any) error {
	line := 1 + strings.Count(p.src[:p.pos], "\n")
	return fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, args...))
}

// skip skips blanks, comments and, with newlines, line ends.
func (p *hclParser) skip(newlines bool) {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || (newlines && (c == '\n' || c == ',')):
			p.pos++
		case c == '#' || strings.HasPrefix(p.src[p.pos:], "//"):
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *hclParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdentChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// body reads attributes and blocks up to "}" (or the end, at top level).
func (p *hclParser) body(top bool) (*HCLBlock, error) {
	b := &HCLBlock{}
	for {
		p.skip(true)
		if p.pos == len(p.src) {
			if top {
				return b, nil
			}
			return nil, p.errorf("unexpected end: missing }")
		}
		if p.src[p.pos] == '}' {
			if top {
				return nil, p.errorf("unexpected }")
			}
			p.pos++
			return b, nil
		}
		name := p.ident()
		if name == "" {
			return nil, p.errorf("expected a name, found %q", p.src[p.pos:min(p.pos+20, len(p.src))])
		}
		p.skip(false)
		if p.pos < len(p.src) && p.src[p.pos] == '=' {
			p.pos++
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			b.Attrs = append(b.Attrs, HCLAttr{Name: name, Value: v})
			continue
		}
		blk := &HCLBlock{Type: name}
		for p.pos < len(p.src) && p.src[p.pos] == '"' {
			s, err := p.stringLit()
			if err != nil {
				return nil, err
			}
			blk.Labels = append(blk.Labels, s)
			p.skip(false)
		}
		if p.pos == len(p.src) || p.src[p.pos] != '{' {
			return nil, p.errorf("expected = or { after %s", name)
		}
		p.pos++
		inner, err := p.body(false)
		if err != nil {
			return nil, err
		}
		blk.Attrs, blk.Blocks = inner.Attrs, inner.Blocks
		b.Blocks = append(b.Blocks, blk)
	}
}

func (p *hclParser) stringLit() (string, error) {
	start := p.pos
	p.pos++ // opening quote
	var sb strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c == '\\' && p.pos+1 < len(p.src):
			q, err := strconv.Unquote(`"` + p.src[p.pos:p.pos+2] + `"`)
			if err != nil {
				return "", p.errorf("bad escape in string")
			}
			sb.WriteString(q)
			p.pos += 2
		case c == '\n':
			p.pos = start
			return "", p.errorf("unterminated string")
		default:
			sb.WriteByte(c)
			p.pos++
		}
	}
	p.pos = start
	return "", p.errorf("unterminated string")
}

// balanced returns the raw text from an opening bracket to its match.
func (p *hclParser) balanced() (string, error) {
	start := p.pos
	depth := 0
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				p.pos++
				return p.src[start:p.pos], nil
			}
		case '"':
			if _, err := p.stringLit(); err != nil {
				return "", err
			}
			continue
		}
		p.pos++
	}
	p.pos = start
	return "", p.errorf("unbalanced brackets")
}

func (p *hclParser) expr() (HCLExpr, error) {
	p.skip(false)
	if p.pos == len(p.src) {
		return HCLExpr{}, p.errorf("missing expression")
	}
	switch c := p.src[p.pos]; {
	case c == '"':
		s, err := p.stringLit()
		return HCLExpr{Kind: HCLString, Str: s}, err
	case c == '[':
		rest := strings.TrimLeft(p.src[p.pos+1:], " \t\r\n")
		if strings.HasPrefix(rest, "for ") {
			raw, err := p.balanced()
			return HCLExpr{Kind: HCLRaw, Raw: raw}, err
		}
		p.pos++
		var list []HCLExpr
		for {
			p.skip(true)
			if p.pos < len(p.src) && p.src[p.pos] == ']' {
				p.pos++
				return HCLExpr{Kind: HCLList, List: list}, nil
			}
			v, err := p.expr()
			if err != nil {
				return HCLExpr{}, err
			}
			list = append(list, v)
		}
	case c == '{':
		p.pos++
		var attrs []HCLAttr
		for {
			p.skip(true)
			if p.pos < len(p.src) && p.src[p.pos] == '}' {
				p.pos++
				return HCLExpr{Kind: HCLObject, Attrs: attrs}, nil
			}
			var name string
			if p.pos < len(p.src) && p.src[p.pos] == '"' {
				s, err := p.stringLit()
				if err != nil {
					return HCLExpr{}, err
				}
				name = s
			} else {
				name = p.ident()
			}
			if name == "" {
				return HCLExpr{}, p.errorf("expected an object key")
			}
			p.skip(false)
			if p.pos == len(p.src) || (p.src[p.pos] != '=' && p.src[p.pos] != ':') {
				return HCLExpr{}, p.errorf("expected = after %s", name)
			}
			p.pos++
			v, err := p.expr()
			if err != nil {
				return HCLExpr{}, err
			}
			attrs = append(attrs, HCLAttr{Name: name, Value: v})
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte("0123456789.eE", p.src[p.pos]) >= 0 {
			p.pos++
		}
		n, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			return HCLExpr{}, p.errorf("bad number %q", p.src[start:p.pos])
		}
		return HCLExpr{Kind: HCLNumber, Num: n}, nil
	case isIdentChar(c):
		start := p.pos
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			switch {
			case isIdentChar(c) || c == '.' || c == '*':
				p.pos++
				continue
			case c == '[':
				if _, err := p.balanced(); err != nil {
					return HCLExpr{}, err
				}
				continue
			}
			break
		}
		word := p.src[start:p.pos]
		switch word {
		case "true", "false":
			return HCLExpr{Kind: HCLBool, Bool: word == "true"}, nil
		case "null":
			return HCLExpr{Kind: HCLNull}, nil
		}
		if p.pos < len(p.src) && p.src[p.pos] == '(' {
			p.pos++
			var args []HCLExpr
			for {
				p.skip(true)
				if p.pos < len(p.src) && p.src[p.pos] == ')' {
					p.pos++
					return HCLExpr{Kind: HCLCall, Raw: word, List: args}, nil
				}
				v, err := p.expr()
				if err != nil {
					return HCLExpr{}, err
				}
				args = append(args, v)
			}
		}
		return HCLExpr{Kind: HCLRef, Raw: word}, nil
	}
	return HCLExpr{}, p.errorf("unexpected %q", p.src[p.pos:min(p.pos+20, len(p.src))])
}
