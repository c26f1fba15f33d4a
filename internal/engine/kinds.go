package engine

import (
	"context"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// A credential kind is what a role rotates, and how: an immediate client secret, a staged
// one, a private_key_jwt key pair. Everything that differs between kinds is a method of
// CredentialKind, and every part of the engine that depends on the kind (the role write
// and read, the job path, recovery, the creds answer, token/) dispatches on it once,
// through KindFor(role.KindKey()) or KindFor(creds.KindKey()). Each kind lives in its own
// file with its own settings (its stored state, if any, in internal/model); adding one is
// that file and a line in credentialKinds. The exported methods are those the path
// handlers call.
type CredentialKind interface {
	// CredentialType is the role's credential_type; Strategy its rotation_strategy, ""
	// for a kind that has none of its own (it rotates with an overlap).
	CredentialType() string
	Strategy() string
	// rotates says what the kind rotates, for messages: "immediately", "private_key_jwt
	// keys (end_overlap=true is its option)".
	rotates() string

	// ownFields are the role fields only this kind (and the kinds that share them) takes:
	// a write that sets one for a role of another kind is refused.
	ownFields() []string
	// ApplyFields validates and applies the kind's fields, after the common ones.
	ApplyFields(role *model.RoleEntry, d *framework.FieldData, creating bool, now time.Time) *logical.Response
	// CheckApplication is called when a role is created: whether the kind can take over
	// the application as Auth0 has it now.
	CheckApplication(ctx context.Context, conn *connection, role *model.RoleEntry) (*logical.Response, error)
	// applicationProblem says why the kind cannot rotate the application as Auth0 has it
	// (how it authenticates: methods), "" when it can; config/check asks it of every role.
	applicationProblem(role *model.RoleEntry, methods *auth0api.AuthMethods) string
	// scheduleProblem says why the role's schedule does not fit the kind's own periods
	// (stage_period, overlap_period, certificate_ttl), "" when it does; the role write
	// refuses such settings, and config/check reports roles that have them anyway.
	scheduleProblem(role *model.RoleEntry, now time.Time) string
	// ReadFields adds the kind's settings and state to a role read.
	ReadFields(role *model.RoleEntry, data map[string]interface{})

	// options are the options of rotate/<name> the kind takes (switch_now, ...).
	options() []string
	// run is the kind's part of a role's job (runRoleJob), under the role's lock, once
	// the application's ownership is checked: it resolves what a crash left in flight,
	// then rotates if the trigger asks for it.
	run(ctx context.Context, j *roleJob) (*model.VersionMeta, *logical.Response, error)
	// dueTime is when the scheduler must next look at the role (DueTime).
	dueTime(r *model.RoleEntry, now time.Time) time.Time
	// consumerLead is how long consumers have between seeing a new credential and Auth0
	// requiring it; 0 when Auth0 requires it at once.
	consumerLead(r *model.RoleEntry) time.Duration

	// servesPrevious reports whether creds serve retained version prev, the one before
	// the current, as the previous credential.
	servesPrevious(r *model.RoleEntry, prev int) bool
	// credsMeta copies the kind's role state into what creds serves.
	credsMeta(r *model.RoleEntry, c *model.CredsEntry)
	// nextChange is the next change a consumer of creds must see (NextChange).
	nextChange(c *model.CredsEntry) time.Time
	// CredsFields adds the served credential to a creds answer; a read of the current
	// version answers every field of the kind, empty when it does not apply.
	CredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{})
	// schemas are the kind's fields in the API.
	schemas() KindSchemas
	// driftOf compares the role's current credential (creds) with what Auth0 holds, and
	// says what differs, "" if nothing does (drift.go).
	driftOf(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, creds *model.CredsEntry) (string, error)
	// authenticate sets how a token request of token/ authenticates with the served
	// credential.
	authenticate(b *Engine, cfg *model.ConfigEntry, c *model.CredsEntry, req *auth0api.TokenRequest) error
}

// KindSchemas are the fields a kind adds to the API (OpenAPI, docs/API.md, path-help):
// its role settings, what a role read shows of it, and its fields in a creds answer.
type KindSchemas struct {
	Role, Read, Creds map[string]*framework.FieldSchema
	// About describes the kind's credential_type in the field's description; RoleHelp
	// and CredsHelp are its paragraphs of the roles' and creds' path-help (each ends with
	// a line break, and a blank line to end its paragraph).
	About, RoleHelp, CredsHelp string
}

// KindHelp joins the kinds' paragraphs picked by of, in their order.
func KindHelp(of func(KindSchemas) string) string {
	var b strings.Builder
	for _, k := range credentialKinds {
		b.WriteString(of(k.schemas()))
	}
	return b.String()
}

// CredentialTypeHelp is the description of a role's credential_type.
func CredentialTypeHelp() string {
	var about []string
	for _, k := range credentialKinds {
		if a := k.schemas().About; a != "" {
			about = append(about, a)
		}
	}
	return "What the role rotates: " + strings.Join(about, "; ") + ". Set on create; it cannot change once the role has a version."
}

// WithKindFields adds to fields those of every kind picked by of; a field shared by
// several kinds is described once, by the first.
func WithKindFields(fields map[string]*framework.FieldSchema, of func(KindSchemas) map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for _, k := range credentialKinds {
		for name, schema := range of(k.schemas()) {
			if _, ok := fields[name]; !ok {
				fields[name] = schema
			}
		}
	}
	return fields
}

// credentialKinds are the kinds a role can have. The first of a credential type is the
// one a role of that type gets without a rotation_strategy.
var credentialKinds = []CredentialKind{
	secretKind{},
	stagedKind{},
	keyKind{},
	certKind{},
}

// kindOf is the kind of credential type ct ("" is client_secret) and rotation strategy
// strategy ("" is the type's default), or nil.
func kindOf(ct, strategy string) CredentialKind {
	if ct == "" {
		ct = model.CredentialClientSecret
	}
	for _, k := range credentialKinds {
		if k.CredentialType() == ct && (strategy == "" || strategy == k.Strategy() || strategy == model.StrategyImmediate && k.Strategy() == "") {
			return k
		}
	}
	return nil
}

// KindFor is the kind of credential type ct and rotation strategy strategy, as a role or
// its creds entry stores them (kindKey).
func KindFor(ct, strategy string) CredentialKind {
	if k := kindOf(ct, strategy); k != nil {
		return k
	}
	return secretKind{} // written by no build; served as the default kind
}

// credentialTypes lists the credential types, each once, for messages and help.
func credentialTypes() []string {
	return kindStrings(func(k CredentialKind) []string { return []string{k.CredentialType()} })
}

// kindStrings is what of answers for every kind, each string once, in the kinds' order.
func kindStrings(of func(CredentialKind) []string) []string {
	var all []string
	for _, k := range credentialKinds {
		for _, v := range of(k) {
			if !slices.Contains(all, v) {
				all = append(all, v)
			}
		}
	}
	return all
}

// typesTaking names the credential types whose kinds take field (or rotate option) f:
// "credential_type=private_key_jwt", or several joined with "or".
func typesTaking(f string, of func(CredentialKind) []string) string {
	var types []string
	for _, k := range credentialKinds {
		if slices.Contains(of(k), f) && !slices.Contains(types, k.CredentialType()) {
			types = append(types, k.CredentialType())
		}
	}
	return "credential_type=" + strings.Join(types, " or ")
}

// kindFields is every field some kind owns.
func kindFields() []string { return kindStrings(CredentialKind.ownFields) }

// SelectKind applies credential_type and rotation_strategy to role and answers its kind,
// or an error response when the pair names none or the role can no longer change kind.
func SelectKind(role *model.RoleEntry, d *framework.FieldData) (CredentialKind, *logical.Response) {
	ct, strategy := role.CredentialType, role.RotationStrategy
	if raw, ok := d.GetOk("credential_type"); ok {
		ct = strings.ToLower(strings.TrimSpace(raw.(string)))
		if ct == model.CredentialClientSecret {
			ct = ""
		}
		if kindOf(ct, "") == nil {
			return nil, logical.ErrorResponse("credential_type must be one of %s, got %q", strings.Join(credentialTypes(), ", "), raw)
		}
		if ct != role.CredentialType && (len(role.Versions) > 0 || role.PendingKey != nil || role.Staged != nil) {
			return nil, logical.ErrorResponse("credential_type cannot change once the role has a version; create another role for the application's %s (delete this one first: one application belongs to one role)", CredentialTypeName(ct))
		}
	}
	if raw, ok := d.GetOk("rotation_strategy"); ok {
		strategy = strings.ToLower(strings.TrimSpace(raw.(string)))
		switch strategy {
		case "", model.StrategyImmediate:
			strategy = ""
		case model.StrategyStaged:
		default:
			return nil, logical.ErrorResponse("rotation_strategy must be %q or %q, got %q", model.StrategyImmediate, model.StrategyStaged, raw)
		}
		if strategy != role.RotationStrategy && role.Staged != nil {
			return nil, logical.ErrorResponse("the role has a staged secret (version %d, switching at %s); finish it first (vault write <mount>/rotate/<name> switch_now=true) or cancel it (cancel_staged=true), then change rotation_strategy",
				role.Staged.Version, role.Staged.SwitchTime.Format(time.RFC3339))
		}
	}
	kind := kindOf(ct, strategy)
	if kind == nil {
		// Only client secrets have strategies; the other kinds overlap their own way.
		return nil, logical.ErrorResponse("%s roles rotate with their own overlap: rotation_strategy=staged, password_policy and import_current_secret do not apply", CredentialTypeName(ct))
	}
	role.CredentialType, role.RotationStrategy = ct, strategy
	if kind.Strategy() != model.StrategyStaged {
		role.StagePeriod, role.PasswordPolicy = 0, "" // left from a staged past
	}
	for _, f := range kindFields() {
		if !FieldSet(d, f) || slices.Contains(kind.ownFields(), f) {
			continue
		}
		if slices.Contains(stagedKind{}.ownFields(), f) {
			if reflect.ValueOf(d.Get(f)).IsZero() {
				continue // clearing what a staged past left is always allowed
			}
			return nil, logical.ErrorResponse("stage_period and password_policy apply only with rotation_strategy=staged")
		}
		return nil, logical.ErrorResponse("%s applies only with %s", f, typesTaking(f, CredentialKind.ownFields))
	}
	if d.Get("import_current_secret").(bool) && kind.CredentialType() != model.CredentialClientSecret {
		return nil, logical.ErrorResponse("%s roles rotate with their own overlap: rotation_strategy=staged, password_policy and import_current_secret do not apply", CredentialTypeName(ct))
	}
	return kind, nil
}

// checkOptions refuses a rotate option the role's kind does not take.
func checkOptions(kind CredentialKind, name string, opts RotateOptions) *logical.Response {
	for _, o := range opts.set() {
		if slices.Contains(kind.options(), o) {
			continue
		}
		if o == "switch_now" || o == "cancel_staged" {
			return logical.ErrorResponse("switch_now and cancel_staged apply only to roles with rotation_strategy=staged; role %q rotates %s", name, kind.rotates())
		}
		return logical.ErrorResponse("%s applies only to roles with %s", o, typesTaking(o, CredentialKind.options))
	}
	return nil
}

// set names the options given.
func (o RotateOptions) set() []string {
	var set []string
	if o.SwitchNow {
		set = append(set, "switch_now")
	}
	if o.CancelStaged {
		set = append(set, "cancel_staged")
	}
	if o.EndOverlap {
		set = append(set, "end_overlap")
	}
	return set
}

// resolveThenRotate is the job of the client secret kinds: resolve any rotation left in
// flight, then, unless only reconciling or the resolution stored what was due, rotate.
func (j *roleJob) resolveThenRotate(ctx context.Context, rotate func(ctx context.Context) (*model.VersionMeta, *logical.Response, error)) (*model.VersionMeta, *logical.Response, error) {
	if err := j.b.resolveRoleWALs(ctx, j.s, j.name, j.role); err != nil {
		return j.fail(ctx, nil, fmt.Errorf("finishing an earlier rotation of role %q that was left in flight (no new rotation starts until it is resolved): %w", j.name, err))
	}
	if j.trigger == TriggerReconcile {
		return nil, nil, nil
	}
	if j.trigger == triggerScheduled && DueTime(j.role, j.now).After(j.now) {
		return nil, nil, nil // resolving stored the rotation that was due
	}
	return rotate(ctx)
}

// TimeOrEmpty is t in RFC 3339, or "" when t is zero.
func TimeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func CredentialTypeName(ct string) string {
	if ct == "" {
		return model.CredentialClientSecret
	}
	return ct
}

func FieldSet(d *framework.FieldData, name string) bool {
	_, ok := d.GetOk(name)
	return ok
}

// defaultNote marks a stage_period that was not set.
func defaultNote(set time.Duration) string {
	if set == 0 {
		return ", the default"
	}
	return ""
}

// AddTime sets data[key] to t in RFC 3339, unless t is zero.
func AddTime(data map[string]interface{}, key string, t time.Time) {
	if !t.IsZero() {
		data[key] = t.UTC().Format(time.RFC3339)
	}
}
