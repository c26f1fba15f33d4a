package auth0_test

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docs/TROUBLESHOOTING.md is checked against the engine's code in both directions, so it
// cannot drift: every operator-facing message in the code has an entry, and every entry
// is a message still in the code.
//
// What counts as an operator-facing message (scanPackage), in the package's non-test
// files:
//
//   - the format of every fmt.Errorf, errors.New and fmt.Sprintf with a literal format,
//     except a Sprintf building a path field's Description (help text, not an error). In
//     this engine every such string ends up in a handler's error, a response, or a
//     failure recorded on a role or on config (last_rotation_failure, last_root_rotation_failure);
//   - the message of every logical.ErrorResponse and logical.CodedError, the text of
//     every resp.AddWarning, and whatever is assigned to a role's Warning or Blocked
//     (shown by vault read as warning and rotation_blocked). A message that is not a
//     literal is followed: a string constant to its value, a local variable to each value
//     assigned to it, a call of a package function to each value it returns, and a
//     concatenation to its literal parts, other operands becoming placeholders;
//   - the argument given to a package function's parameter named "what": the operation
//     auth0Failure and rootFailure put in front of their messages; and to a parameter
//     named "problem" of a package function or method: a message it hands on to an
//     operator (config/check's problems).
//
// A format's argument that is a package-level string or integer constant is written into
// the message (the doc shows "immediate", not a placeholder, and goes stale when the
// constant changes).
//
// Dropped: formats with no letters (pure composition, e.g. "%s: %w": their parts are
// entries of their own), and the few errors in notOperatorFacing, which never leave the
// engine (each with the reason). Errors of lower layers (go-auth0, oauth2, storage)
// wrapped with %w or %v appear only as placeholders after the engine's own text.
//
// Log lines (alertLogLines): every message logged at Error level, and every other logged
// message that README.md names in a code span (`rotation failed`), must be documented in
// the doc's "Log lines" section; every entry there must still be logged.
//
// The doc's entries: a line that holds nothing but one code span, or a table row whose
// first cell does, outside fenced blocks, e.g.
//
//	`role "<role>" does not exist`
//	| `client_id must not be empty` | ... |
//
// Messages match in a normalized form: %q becomes "<>", every other verb <>, and every
// <placeholder> in the doc (or in the code's own text, e.g. <mount>) <>.
//
// TestTroubleshootingMessagesHoldNoSecret also checks the arguments of those messages and
// of every log line: no secret field, and no variable holding a secret or a struct with
// one, may be interpolated (a name-based check: secretFields, secretVars).
const troubleshootingDoc = "docs/TROUBLESHOOTING.md"

// notOperatorFacing are errors that never reach an operator, by normalized message.
var notOperatorFacing = map[string]string{
	"role not found":                                      "errRoleNotFound: rotate/ answers its own message for it, the scheduler and the rollback hook drop the job",
	"role in v0.1.0's storage layout":                     "errLegacyLayout: tells the queue loader to upgrade the role, never returned further",
	"no role":                                             "decodeRotationWAL: an unreadable write-ahead entry is skipped; only logs show it (\"ignoring an unreadable rotation log entry\", Vault's rollback manager)",
	"decoding a rotation log entry: <>":                   "decodeRotationWAL: as above",
	"decoding a role write log entry: <>":                 "decodeRoleWriteWAL: skipped and logged like a rotation's (\"ignoring an unreadable role write log entry\")",
	"the Management API client cannot manage credentials": "keyAPIOf: *auth0api.Management implements keyAPI; only test doubles can fail it",
}

// verbRE matches a fmt verb with its flags, width and precision.
var verbRE = regexp.MustCompile(`%[-+# 0]*(\d+|\*)?(\.(\d+|\*)?)?[a-zA-Z%]`)

var placeholderRE = regexp.MustCompile(`<[^<>]+>`)

var letterRE = regexp.MustCompile(`[A-Za-z]`)

// normalizeMessage is the form code and doc are compared in.
func normalizeMessage(s string, format bool) string {
	if format {
		s = verbRE.ReplaceAllStringFunc(s, func(v string) string {
			switch v[len(v)-1] {
			case '%':
				return "%"
			case 'q':
				return `"<>"`
			}
			return "<>"
		})
	}
	s = placeholderRE.ReplaceAllString(s, "<>")
	return strings.Join(strings.Fields(s), " ")
}

// docForm is how a message is written in the doc: verbs as placeholders.
func docForm(format string) string {
	return verbRE.ReplaceAllStringFunc(format, func(v string) string {
		switch v[len(v)-1] {
		case '%':
			return "%"
		case 'q':
			return `"<value>"`
		case 'w':
			return "<error>"
		}
		return "<value>"
	})
}

// codeMessage is one message found in the code.
type codeMessage struct {
	text   string   // as written, format verbs included (a format) or not
	format bool     // whether text is a fmt format
	where  []string // file:line of each occurrence
}

// messageScanner walks the package's files.
type messageScanner struct {
	fset   *token.FileSet
	files  []*ast.File
	consts map[string]string          // package-level string constants
	ints   map[string]string          // package-level integer constants, as written
	funcs  map[string][]*ast.FuncDecl // functions and methods, by name
	found  map[string]*codeMessage    // by normalized form
	logs   map[string]*codeMessage    // log lines: by normalized form
	levels map[string]string          // log line -> level
	secret []string                   // secret-looking arguments of messages
	// unresolved are messages the scanner could not follow to their text.
	unresolved []string
}

// enginePackages are the directories of the plugin's own packages, whose messages reach
// operators.
var enginePackages = []string{".", "internal/engine", "internal/model", "internal/metrics", "internal/clock", "internal/auth0api"}

func scanPackage(t *testing.T) *messageScanner {
	t.Helper()
	var names []string
	for _, dir := range enginePackages {
		found, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, found...)
	}
	sc := &messageScanner{
		fset:   token.NewFileSet(),
		consts: map[string]string{},
		ints:   map[string]string{},
		funcs:  map[string][]*ast.FuncDecl{},
		found:  map[string]*codeMessage{},
		logs:   map[string]*codeMessage{},
		levels: map[string]string{},
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(sc.fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		sc.files = append(sc.files, f)
	}
	if len(sc.files) == 0 {
		t.Fatal("no Go files of the plugin's packages found; run the test from the repository root")
	}
	for _, f := range sc.files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				sc.funcs[d.Name.Name] = append(sc.funcs[d.Name.Name], d)
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i >= len(vs.Values) {
							continue
						}
						if s, ok := stringLit(vs.Values[i]); ok {
							sc.consts[n.Name] = s
						} else if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
							sc.ints[n.Name] = lit.Value
						}
					}
				}
			}
		}
	}
	for _, f := range sc.files {
		sc.scanFile(f)
	}
	return sc
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// isCall reports whether call is pkg.name(...).
func isCall(call *ast.CallExpr, pkg, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

func (sc *messageScanner) pos(n ast.Node) string {
	p := sc.fset.Position(n.Pos())
	return fmt.Sprintf("%s:%d", p.Filename, p.Line)
}

func (sc *messageScanner) add(text string, format bool, at ast.Node) {
	norm := normalizeMessage(text, format)
	if !letterRE.MatchString(norm) {
		return // pure composition: its parts are messages of their own
	}
	m := sc.found[norm]
	if m == nil {
		m = &codeMessage{text: text, format: format}
		sc.found[norm] = m
	}
	m.where = append(m.where, sc.pos(at))
}

// scanFile collects the messages of one file, function by function (the function is where
// local variables are resolved).
func (sc *messageScanner) scanFile(f *ast.File) {
	var fn ast.Node = f
	var inDescription []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			fn = n
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Description" {
				inDescription = append(inDescription, n.Value)
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				sel, ok := lhs.(*ast.SelectorExpr)
				if ok && (sel.Sel.Name == "Warning" || sel.Sel.Name == "Blocked") && i < len(n.Rhs) {
					sc.sink(n.Rhs[i], fn, nil)
				}
			}
		case *ast.CallExpr:
			sc.call(n, fn, inDescription)
		}
		return true
	})
}

func within(n ast.Node, outer []ast.Node) bool {
	for _, o := range outer {
		if n.Pos() >= o.Pos() && n.End() <= o.End() {
			return true
		}
	}
	return false
}

func (sc *messageScanner) call(call *ast.CallExpr, fn ast.Node, inDescription []ast.Node) {
	switch {
	case isCall(call, "fmt", "Errorf"), isCall(call, "errors", "New"), isCall(call, "fmt", "Sprintf"):
		if within(call, inDescription) || len(call.Args) == 0 {
			return
		}
		if s, ok := stringLit(call.Args[0]); ok {
			if isCall(call, "errors", "New") {
				sc.add(s, false, call)
				return
			}
			sc.add(sc.withConstants(s, call.Args[1:]), true, call)
			sc.checkArgs(call.Args[1:], call)
		}
	case isCall(call, "logical", "ErrorResponse"):
		sc.sinkFormat(call.Args, fn, call)
	case isCall(call, "logical", "CodedError"):
		if len(call.Args) == 2 {
			sc.sink(call.Args[1], fn, call)
		}
	case isLogCall(call) != "":
		if len(call.Args) > 0 {
			if s, ok := stringLit(call.Args[0]); ok {
				norm := normalizeMessage(s, false)
				m := sc.logs[norm]
				if m == nil {
					m = &codeMessage{text: s}
					sc.logs[norm] = m
				}
				m.where = append(m.where, sc.pos(call))
				if lvl := isLogCall(call); sc.levels[norm] != "Error" {
					sc.levels[norm] = lvl
				}
			}
			sc.checkArgs(call.Args[1:], call)
		}
	default:
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "AddWarning" && len(call.Args) == 1 {
			sc.sink(call.Args[0], fn, call)
			return
		}
		// Arguments for a package function's parameter named "what", and for a package
		// function's or method's parameter named "problem".
		var callee string
		method := false
		switch f := call.Fun.(type) {
		case *ast.Ident:
			callee = f.Name
		case *ast.SelectorExpr:
			callee, method = f.Sel.Name, true
		default:
			return
		}
		for _, decl := range sc.funcs[callee] {
			if method != (decl.Recv != nil) {
				continue
			}
			i := 0
			for _, field := range decl.Type.Params.List {
				for _, name := range field.Names {
					if (name.Name == "what" && !method || name.Name == "problem") && i < len(call.Args) {
						sc.sink(call.Args[i], fn, call)
					}
					i++
				}
				if len(field.Names) == 0 {
					i++
				}
			}
		}
	}
}

// isLogCall is the level of a b.Logger().Level(...) or b.logger().Level(...) call, "" if
// call is none.
func isLogCall(call *ast.CallExpr) string {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	inner, ok := sel.X.(*ast.CallExpr)
	if !ok {
		return ""
	}
	if s, ok := inner.Fun.(*ast.SelectorExpr); !ok || s.Sel.Name != "Logger" && s.Sel.Name != "logger" {
		return ""
	}
	switch sel.Sel.Name {
	case "Error", "Warn", "Info", "Debug", "Trace":
		return sel.Sel.Name
	}
	return ""
}

// sinkFormat handles ErrorResponse(format, args...).
func (sc *messageScanner) sinkFormat(args []ast.Expr, fn ast.Node, at ast.Node) {
	if len(args) == 0 {
		return
	}
	if s, ok := stringLit(args[0]); ok {
		sc.add(sc.withConstants(s, args[1:]), true, at)
		sc.checkArgs(args[1:], at)
		return
	}
	sc.sink(args[0], fn, at)
}

// sink collects the messages an expression that reaches an operator can hold. One the
// scanner cannot follow is recorded as unresolved: the test then fails rather than let a
// message go undocumented.
func (sc *messageScanner) sink(e ast.Expr, fn ast.Node, at ast.Node) {
	if at == nil {
		at = e
	}
	if _, lit := e.(*ast.BasicLit); !lit {
		sc.checkArgs([]ast.Expr{e}, at)
	}
	vals, known := sc.values(e, fn, map[ast.Node]bool{})
	if !known {
		sc.unresolved = append(sc.unresolved, fmt.Sprintf("%s: %s", sc.pos(at), types.ExprString(e)))
	}
	for _, v := range vals {
		sc.add(v.text, v.format, at)
	}
}

type value struct {
	text   string
	format bool
}

// values are the messages e can hold, and whether all of them could be told. fmt and
// errors calls with a literal format add nothing here: the walk collects their formats
// where they are.
func (sc *messageScanner) values(e ast.Expr, fn ast.Node, seen map[ast.Node]bool) ([]value, bool) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return sc.values(e.X, fn, seen)
	case *ast.BasicLit:
		if s, ok := stringLit(e); ok {
			return []value{{text: s}}, true
		}
	case *ast.Ident:
		if s, ok := sc.constant(e); ok {
			return []value{{text: s}}, true
		}
		rhs := sc.assignments(e, fn)
		var out []value
		for _, r := range rhs {
			vals, known := sc.values(r, fn, seen)
			if !known {
				return nil, false
			}
			out = append(out, vals...)
		}
		return out, len(rhs) > 0
	case *ast.SelectorExpr:
		if id, ok := moduleConst(e); ok {
			if s, ok := sc.constant(id); ok {
				return []value{{text: s}}, true
			}
		}
		// A role's warning or block reason: collected where it is assigned.
		return nil, e.Sel.Name == "Warning" || e.Sel.Name == "Blocked"
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return nil, false
		}
		var out []value
		for _, s := range sc.concat(e, fn) {
			out = append(out, value{text: s, format: true})
		}
		return out, true
	case *ast.CallExpr:
		var name string
		switch f := e.Fun.(type) {
		case *ast.Ident:
			name = f.Name
		case *ast.SelectorExpr:
			if isCall(e, "fmt", "Sprintf") || isCall(e, "fmt", "Errorf") || isCall(e, "errors", "New") {
				_, lit := stringLit(e.Args[0])
				return nil, lit
			}
			name = f.Sel.Name
		}
		decls := sc.funcs[name]
		var out []value
		for _, decl := range decls {
			if seen[decl] || decl.Body == nil {
				continue
			}
			seen[decl] = true
			known := true
			ast.Inspect(decl.Body, func(n ast.Node) bool {
				if _, ok := n.(*ast.FuncLit); ok {
					return false
				}
				if ret, ok := n.(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
					vals, k := sc.values(ret.Results[0], decl, seen)
					out = append(out, vals...)
					known = known && k
				}
				return true
			})
			if !known {
				return nil, false
			}
		}
		return out, len(decls) > 0
	}
	return nil, false
}

// concat renders a string concatenation: its literal parts as they are ('%' escaped, so
// that the result reads as a format), anything else as a placeholder.
func (sc *messageScanner) concat(e ast.Expr, fn ast.Node) []string {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return sc.concat(e.X, fn)
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			var out []string
			for _, l := range sc.concat(e.X, fn) {
				for _, r := range sc.concat(e.Y, fn) {
					out = append(out, l+r)
				}
			}
			return out
		}
	case *ast.BasicLit:
		if s, ok := stringLit(e); ok {
			return []string{strings.ReplaceAll(s, "%", "%%")}
		}
	case *ast.Ident:
		if s, ok := sc.constant(e); ok {
			return []string{strings.ReplaceAll(s, "%", "%%")}
		}
	case *ast.SelectorExpr:
		if id, ok := moduleConst(e); ok {
			if s, ok := sc.constant(id); ok {
				return []string{strings.ReplaceAll(s, "%", "%%")}
			}
		}
	}
	return []string{"%v"}
}

// withConstants writes into format the value of each argument that is a package-level
// string or integer constant, so that the doc shows e.g. "immediate" rather than a
// placeholder (and goes stale when the constant changes).
func (sc *messageScanner) withConstants(format string, args []ast.Expr) string {
	n := 0
	return verbRE.ReplaceAllStringFunc(format, func(v string) string {
		if v == "%%" || n >= len(args) {
			return v
		}
		arg := args[n]
		n++
		id, ok := arg.(*ast.Ident)
		if sel, isSel := arg.(*ast.SelectorExpr); isSel {
			id, ok = moduleConst(sel)
		}
		if !ok || id.Obj != nil && id.Obj.Kind != ast.Con {
			return v
		}
		verb := v[len(v)-1]
		if s, ok := sc.consts[id.Name]; ok && len(v) == 2 {
			switch verb {
			case 'q':
				return strings.ReplaceAll(strconv.Quote(s), "%", "%%")
			case 's', 'v':
				return strings.ReplaceAll(s, "%", "%%")
			}
		}
		if i, ok := sc.ints[id.Name]; ok && len(v) == 2 && (verb == 'd' || verb == 'v') {
			return i
		}
		return v
	})
}

// moduleConst is the name of what e selects from one of the plugin's own packages
// (model.X, engine.X, ...): a constant there is looked up by its name, like one of the
// package it is used in.
func moduleConst(e *ast.SelectorExpr) (*ast.Ident, bool) {
	pkg, ok := e.X.(*ast.Ident)
	if !ok || pkg.Obj != nil {
		return nil, false
	}
	for _, dir := range enginePackages {
		if dir != "." && path.Base(dir) == pkg.Name {
			return e.Sel, true
		}
	}
	return nil, false
}

// constant is the value of a package-level string constant.
func (sc *messageScanner) constant(id *ast.Ident) (string, bool) {
	if id.Obj != nil && id.Obj.Kind != ast.Con {
		return "", false
	}
	s, ok := sc.consts[id.Name]
	return s, ok
}

// assignments are the values assigned to the local variable id within fn.
func (sc *messageScanner) assignments(id *ast.Ident, fn ast.Node) []ast.Expr {
	if id.Obj == nil || id.Obj.Kind != ast.Var {
		return nil
	}
	var out []ast.Expr
	ast.Inspect(fn, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) != len(n.Rhs) {
				return true
			}
			for i, lhs := range n.Lhs {
				if l, ok := lhs.(*ast.Ident); ok && l.Obj == id.Obj {
					out = append(out, n.Rhs[i])
				}
			}
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if name.Obj == id.Obj && i < len(n.Values) {
					out = append(out, n.Values[i])
				}
			}
		}
		return true
	})
	return out
}

// Names of fields and variables that hold secrets, or structs that hold them: none may be
// an argument of a message or a log line.
var (
	secretFields = map[string]bool{"Secret": true, "ClientSecret": true, "PendingClientSecret": true, "PrivateKey": true, "LegacySecret": true, "AccessToken": true}
	secretVars   = map[string]bool{"secret": true, "imported": true, "privatePEM": true, "assertion": true, "sec": true, "served": true, "previous": true, "creds": true, "fresh": true, "cfg": true, "conn": true, "info": true, "tok": true, "cached": true, "app": true}
)

// checkArgs records arguments of a message that look like secrets: a secret field, or a
// variable holding a secret (or a struct holding one) passed whole.
func (sc *messageScanner) checkArgs(args []ast.Expr, at ast.Node) {
	for _, arg := range args {
		selX := map[ast.Expr]bool{}
		ast.Inspect(arg, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				selX[n.X] = true
				if secretFields[n.Sel.Name] {
					sc.secret = append(sc.secret, fmt.Sprintf("%s: argument %s", sc.pos(at), n.Sel.Name))
				}
			case *ast.Ident:
				if secretVars[n.Name] && !selX[n] {
					sc.secret = append(sc.secret, fmt.Sprintf("%s: argument %s passed whole", sc.pos(at), n.Name))
				}
			}
			return true
		})
	}
}

// docEntry is one entry of the doc.
type docEntry struct {
	text string
	line int
	log  bool // in the "Log lines" section
}

var anchorRE = regexp.MustCompile("^`([^`]+)`$")

func readDoc(t *testing.T) []docEntry {
	t.Helper()
	f, err := os.Open(troubleshootingDoc)
	if err != nil {
		t.Fatalf("%v: the troubleshooting reference is missing; it documents every message the engine returns", err)
	}
	defer f.Close()
	var entries []docEntry
	fenced, logs := false, false
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			fenced = !fenced
		case fenced:
		case strings.HasPrefix(line, "## "):
			logs = strings.EqualFold(strings.TrimSpace(line[3:]), "Log lines")
		default:
			if strings.HasPrefix(line, "|") {
				// A table row: its first cell.
				line = strings.TrimSpace(strings.SplitN(line[1:], "|", 2)[0])
			}
			if m := anchorRE.FindStringSubmatch(line); m != nil {
				entries = append(entries, docEntry{text: m[1], line: n, log: logs})
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

// alertLogLines are the log lines the doc must explain: those at Error level and those
// README.md names in a code span.
func alertLogLines(t *testing.T, sc *messageScanner) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(readme), -1) {
		named[normalizeMessage(m[1], false)] = true
	}
	out := map[string]bool{}
	for norm := range sc.logs {
		if sc.levels[norm] == "Error" || named[norm] {
			out[norm] = true
		}
	}
	return out
}

// TestTroubleshootingDocCoversEveryMessage: every operator-facing message of the engine,
// and every log line to alert on, has an entry in docs/TROUBLESHOOTING.md.
func TestTroubleshootingDocCoversEveryMessage(t *testing.T) {
	sc := scanPackage(t)
	documented := map[string]bool{}
	documentedLogs := map[string]bool{}
	entries := readDoc(t)
	t.Logf("%d operator-facing messages (%d left out as not operator-facing), %d log lines to alert on; %d entries in %s",
		len(sc.found)-len(notOperatorFacing), len(notOperatorFacing), len(alertLogLines(t, sc)), len(entries), troubleshootingDoc)
	for _, e := range entries {
		if e.log {
			documentedLogs[normalizeMessage(e.text, false)] = true
		} else {
			documented[normalizeMessage(e.text, false)] = true
		}
	}
	for _, u := range sc.unresolved {
		t.Errorf("%s: troubleshooting_test.go cannot tell which message this holds; give the message a literal format (or a string constant), or teach scanPackage to follow it", u)
	}
	for _, norm := range slices.Sorted(maps.Keys(sc.found)) {
		if _, skip := notOperatorFacing[norm]; skip || documented[norm] {
			continue
		}
		m := sc.found[norm]
		text := m.text
		if m.format {
			text = docForm(text)
		}
		t.Errorf("%s has no entry for the message at %s:\n\t%s\nadd one under the right area: a line (or a table row's first cell) holding only\n\t`%s`\n(placeholders renamed to say what they hold, e.g. \"<role>\" for a quoted role name), followed by its cause and what the operator should do",
			troubleshootingDoc, strings.Join(m.where, ", "), m.text, text)
	}
	for _, norm := range slices.Sorted(maps.Keys(alertLogLines(t, sc))) {
		if documentedLogs[norm] {
			continue
		}
		m := sc.logs[norm]
		t.Errorf("%s has no entry in its \"Log lines\" section for the %s line logged at %s:\n\t`%s`\nadd one there: a line holding only that code span, then what it means and what to do",
			troubleshootingDoc, sc.levels[norm], strings.Join(m.where, ", "), m.text)
	}
}

// TestTroubleshootingDocHasNoStaleEntry: every entry of docs/TROUBLESHOOTING.md is a message
// (or log line) still in the engine's code, and is documented once.
func TestTroubleshootingDocHasNoStaleEntry(t *testing.T) {
	sc := scanPackage(t)
	seen := map[string]int{}
	for _, e := range readDoc(t) {
		norm := normalizeMessage(e.text, false)
		key := fmt.Sprint(e.log, norm)
		if first, dup := seen[key]; dup {
			t.Errorf("%s:%d documents `%s` again (first at line %d); merge the two entries", troubleshootingDoc, e.line, e.text, first)
			continue
		}
		seen[key] = e.line
		switch {
		case e.log && sc.logs[norm] == nil:
			t.Errorf("%s:%d documents the log line `%s`, which the engine no longer logs: delete the entry, or reword it as the code now logs it", troubleshootingDoc, e.line, e.text)
		case !e.log && sc.found[norm] == nil:
			hint := ""
			if _, skip := notOperatorFacing[norm]; skip {
				hint = " (notOperatorFacing in troubleshooting_test.go lists it as never reaching an operator)"
			}
			t.Errorf("%s:%d documents `%s`, which is no longer an operator-facing message of the engine%s: delete the entry, or reword it as the code now says it", troubleshootingDoc, e.line, e.text, hint)
		}
	}
	for _, norm := range slices.Sorted(maps.Keys(notOperatorFacing)) {
		if sc.found[norm] == nil {
			t.Errorf("notOperatorFacing in troubleshooting_test.go lists %q, which the code no longer has: delete it there", norm)
		}
	}
}

// TestTroubleshootingMessagesHoldNoSecret: no message or log line takes a secret, or a
// struct that holds one, as an argument.
func TestTroubleshootingMessagesHoldNoSecret(t *testing.T) {
	sc := scanPackage(t)
	for _, s := range sc.secret {
		t.Errorf("%s: a message or log line may interpolate a secret; pass only what identifies it (role, client_id, version)", s)
	}
}
