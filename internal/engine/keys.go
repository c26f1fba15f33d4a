package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// private_key_jwt roles (credential_type=private_key_jwt) rotate an RSA key pair instead
// of a client secret. Auth0 keeps up to two credentials per application, and both may be
// attached to its private_key_jwt method at once, so a rotation overlaps for real: the new
// key is registered and attached next to the current one, served by creds, and the old
// key is detached and deleted only overlap_period later.
//
// The private key is generated here and never leaves Vault. A rotation is crash-safe by
// construction:
//
//  1. the private key is stored, and the role records it as pending (PendingKey), before
//     Auth0 hears of it;
//  2. its public key is registered under a name that identifies the mount, the role and
//     the version, so a credential whose creation answer was lost is found by listing;
//  3. it is attached next to the keys attached now (PATCH, idempotent);
//  4. Vault proves Auth0 accepts it (a client assertion exchanged at /oauth/token);
//  5. it becomes the current version, and the keys attached before it become the
//     overlap (Overlap), detached and deleted at its end (PATCH, then DELETE; both
//     idempotent).
//
// A job that finds a pending key finishes it from step 2; one that finds an ended overlap
// finishes step 5. Credentials of this role that Vault holds no key for (left by an
// interrupted run) are deleted before a new key is registered.

const (
	defaultOverlapPeriod = 24 * time.Hour
	// maxAttachedCredentials is Auth0's limit of credentials per application.
	maxAttachedCredentials = 2
	// verifyAssertionTTL is the lifetime of the assertions that prove a new key.
	verifyAssertionTTL = time.Minute
)

// keyKind is credential_type=private_key_jwt.
type keyKind struct{}

func (keyKind) CredentialType() string { return model.CredentialPrivateKeyJWT }
func (keyKind) Strategy() string       { return "" }
func (keyKind) rotates() string        { return "private_key_jwt keys (end_overlap=true is its option)" }
func (keyKind) ownFields() []string {
	return []string{"key_bits", "algorithm", "overlap_period", "allow_auth_method_change"}
}
func (keyKind) options() []string { return []string{"end_overlap"} }

// ApplyFields validates and applies the key settings.
func (keyKind) ApplyFields(role *model.RoleEntry, d *framework.FieldData, creating bool, now time.Time) *logical.Response {
	if creating && !FieldSet(d, "overlap_period") {
		role.OverlapPeriod = defaultOverlapPeriod
	}
	if resp := applyKeyBits(role, d); resp != nil {
		return resp
	}
	if raw, ok := d.GetOk("algorithm"); ok {
		alg := strings.ToUpper(strings.TrimSpace(raw.(string)))
		if !slices.Contains(auth0api.KeyAlgorithms, alg) {
			return logical.ErrorResponse("algorithm must be RS256, RS384 or PS256 (what Auth0 accepts for private_key_jwt), got %q", raw)
		}
		role.Algorithm = alg
	}
	return applyOverlapFields(role, d, now)
}

// applyOverlapFields validates and applies overlap_period and allow_auth_method_change,
// the settings of every kind that attaches credentials at Auth0.
func applyOverlapFields(role *model.RoleEntry, d *framework.FieldData, now time.Time) *logical.Response {
	if raw, ok := d.GetOk("overlap_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period < 0 {
			return logical.ErrorResponse("overlap_period must not be negative")
		}
		role.OverlapPeriod = period
	}
	if raw, ok := d.GetOk("allow_auth_method_change"); ok {
		role.AllowAuthMethodChange = raw.(bool)
	}
	if problem := overlapProblem(role, now); problem != "" {
		return logical.ErrorResponse("%s", problem)
	}
	return nil
}

// overlapProblem says why overlap_period does not fit the role's schedule, "" when it
// does: Auth0 keeps two credentials per application, so the next one is made only once
// the previous one is detached.
func overlapProblem(role *model.RoleEntry, now time.Time) string {
	overlap := role.OverlapPeriodOrDefault()
	if role.RotationPeriod > 0 && overlap >= role.RotationPeriod {
		return fmt.Sprintf("overlap_period (%s) must be shorter than rotation_period (%s): Auth0 keeps two credentials per application, so the next one is made only once the previous one is detached", overlap, role.RotationPeriod)
	}
	if role.RotationSchedule != "" {
		if gap := role.ShortestScheduleGap(now); gap > 0 && overlap >= gap {
			return fmt.Sprintf("overlap_period (%s) must be shorter than the shortest interval between rotation_schedule's times (%s)", overlap, gap)
		}
	}
	return ""
}

func (keyKind) scheduleProblem(role *model.RoleEntry, now time.Time) string {
	return overlapProblem(role, now)
}

func (k keyKind) CheckApplication(ctx context.Context, conn *connection, role *model.RoleEntry) (*logical.Response, error) {
	return checkAuthMethod(ctx, conn, role, k.method())
}

func (k keyKind) applicationProblem(role *model.RoleEntry, methods *auth0api.AuthMethods) string {
	return attachedMethodProblem(role, methods, k.method())
}

// checkAuthMethod refuses to take over an application that authenticates with a client
// secret or another credential method, unless the role allows Vault to switch it to
// method.
func checkAuthMethod(ctx context.Context, conn *connection, role *model.RoleEntry, method string) (*logical.Response, error) {
	if role.AllowAuthMethodChange {
		return nil, nil
	}
	api, err := keyAPIOf(conn)
	if err != nil {
		return nil, nil
	}
	methods, err := api.AuthMethods(ctx, role.ClientID, method)
	if err != nil {
		return Auth0Failure(fmt.Sprintf("checking how client_id %q authenticates", role.ClientID), err)
	}
	if problem := attachedMethodProblem(role, methods, method); problem != "" {
		return logical.ErrorResponse("%s", problem), nil
	}
	return nil, nil
}

// attachedMethodProblem says why a role attaching credentials to method cannot take over
// the application as Auth0 has it (methods), "" when it can: switching an application
// off its client secret, or off another credential method, needs the role's consent.
func attachedMethodProblem(role *model.RoleEntry, methods *auth0api.AuthMethods, method string) string {
	if role.AllowAuthMethodChange || !methods.Switching() {
		return ""
	}
	return authMethodRefusal(role.ClientID, methods, method)
}

func (keyKind) ReadFields(role *model.RoleEntry, data map[string]interface{}) {
	attachmentReadFields(role, data)
	data["algorithm"] = role.KeyAlgorithm()
	if cur := role.Current(); cur != nil {
		data["kid"] = cur.KID
	}
	data["allow_assertions"] = role.AllowAssertions
	if role.AllowAssertions {
		ttl := role.AssertionTTL
		if ttl == 0 {
			ttl = DefaultAssertionTTL
		}
		data["assertion_ttl"] = int64(ttl.Seconds())
	}
}

func (k keyKind) run(ctx context.Context, j *roleJob) (*model.VersionMeta, *logical.Response, error) {
	return j.runAttached(ctx, k)
}

func (keyKind) method() string { return auth0api.MethodPrivateKeyJWT }
func (keyKind) noun() string   { return "key" }

// generate makes an RSA key pair of the role's size.
func (keyKind) generate(b *Engine, role *model.RoleEntry, sec *model.SecretEntry, _ time.Time) error {
	privatePEM, _, err := b.GenerateKey(role.KeyBitsOrDefault())
	if err != nil {
		return err
	}
	sec.PrivateKey, sec.Algorithm = privatePEM, role.KeyAlgorithm()
	return nil
}

// register registers the public key.
func (keyKind) register(sec *model.SecretEntry, name string) (auth0api.NewCredential, error) {
	publicPEM, err := auth0api.PublicKeyPEM(sec.PrivateKey)
	if err != nil {
		return auth0api.NewCredential{}, err
	}
	return auth0api.NewCredential{Type: auth0api.CredentialPublicKey, Name: name, PEM: publicPEM, Algorithm: sec.Algorithm}, nil
}

func (keyKind) describe(sec *model.SecretEntry, meta *model.VersionMeta) {
	meta.KID, meta.Algorithm = sec.KID, sec.Algorithm
}

func (keyKind) verify(b *Engine, conn *connection, clientID string, sec *model.SecretEntry) error {
	return b.verifyKey(conn, clientID, sec.PrivateKey, sec.Algorithm, sec.KID)
}

// attachmentReadFields adds to a role read what every kind that attaches credentials
// shows: its settings, the current credential, the overlap and a pending credential.
func attachmentReadFields(role *model.RoleEntry, data map[string]interface{}) {
	data["key_bits"] = role.KeyBitsOrDefault()
	data["overlap_period"] = int64(role.OverlapPeriodOrDefault().Seconds())
	data["allow_auth_method_change"] = role.AllowAuthMethodChange
	if cur := role.Current(); cur != nil {
		data["key_id"] = cur.KeyID
	}
	if ov := role.Overlap; ov != nil {
		data["previous_key_ids"] = ov.CredentialIDs
		AddTime(data, "overlap_until", ov.Until)
	}
	if pk := role.PendingKey; pk != nil {
		data["pending_version"] = pk.Version
		AddTime(data, "pending_publish_time", pk.PublishAt)
	}
}

// applyKeyBits validates and applies key_bits.
func applyKeyBits(role *model.RoleEntry, d *framework.FieldData) *logical.Response {
	if raw, ok := d.GetOk("key_bits"); ok {
		if !slices.Contains(auth0api.KeyBitSizes, raw.(int)) {
			return logical.ErrorResponse("key_bits must be 2048, 3072 or 4096, got %d", raw.(int))
		}
		role.KeyBits = raw.(int)
	}
	return nil
}

// attachingTypes names the credential types whose kinds attach credentials, for the
// descriptions of the fields they share: "private_key_jwt and ... roles".
func attachingTypes() string {
	var types []string
	for _, k := range credentialKinds {
		if _, ok := k.(attachment); ok && !slices.Contains(types, k.CredentialType()) {
			types = append(types, k.CredentialType())
		}
	}
	return strings.Join(types, " and ")
}

// withAttachmentSchemas adds to own the fields every kind that attaches credentials has.
func withAttachmentSchemas(own KindSchemas) KindSchemas {
	who := attachingTypes() + " roles"
	shared := KindSchemas{
		Creds: map[string]*framework.FieldSchema{
			"private_key":          {Type: framework.TypeString, Description: who + ": the private key (PEM, PKCS #8): the key that signs assertions, or the certificate's key.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"previous_private_key": {Type: framework.TypeString, Description: who + ", until overlap_until: the previous private key, its credential still attached at Auth0; else empty.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"overlap_until":        {Type: framework.TypeString, Description: who + ": when the previous credential is detached (RFC 3339); empty when none is attached."},
			"key_id":               {Type: framework.TypeString, Description: who + ": Auth0 credential id of the key or certificate."},
			"previous_key_id":      {Type: framework.TypeString, Description: who + ", until overlap_until: Auth0 credential id of the previous key or certificate; else empty."},
		},
		Role: map[string]*framework.FieldSchema{
			"key_bits": {Type: framework.TypeInt, Description: who + ": RSA key size, 2048 (default), 3072 or 4096."},
			"overlap_period": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("%s: how long the previous credential stays attached at Auth0 after a new one is published. Default %s; 0 detaches it at once; shorter than rotation_period (the next credential is made only once the previous one is detached).", who, defaultOverlapPeriod),
			},
			"allow_auth_method_change": {
				Type:        framework.TypeBool,
				Description: who + ": allow Vault to switch an application that still authenticates with a client secret (or another credential method) to the role's credential_type at its first rotation. One-way: Auth0 then refuses the client secret. Default false: such an application is refused.",
			},
		},
		Read: map[string]*framework.FieldSchema{
			"key_bits":                 {Type: framework.TypeInt, Description: who + ": RSA key size."},
			"overlap_period":           {Type: framework.TypeInt64, Description: who + ": seconds the previous credential stays attached after a rotation."},
			"allow_auth_method_change": {Type: framework.TypeBool, Description: who + ": whether an application still using a client secret (or another credential method) may be switched."},
			"key_id":                   {Type: framework.TypeString, Description: who + ": Auth0 credential id of the current key or certificate."},
			"previous_key_ids":         {Type: framework.TypeStringSlice, Description: who + ", during an overlap: Auth0 credential ids of the previous credentials still attached."},
			"overlap_until":            {Type: framework.TypeTime, Description: who + ", during an overlap: when the previous credential is detached."},
			"pending_version":          {Type: framework.TypeInt, Description: who + ": version of a new credential attached at Auth0 and not yet served."},
			"pending_publish_time":     {Type: framework.TypeTime, Description: who + ": when the pending credential is served."},
		},
	}
	for _, pair := range [][2]map[string]*framework.FieldSchema{{own.Role, shared.Role}, {own.Read, shared.Read}, {own.Creds, shared.Creds}} {
		for name, schema := range pair[1] {
			if _, ok := pair[0][name]; !ok {
				pair[0][name] = schema
			}
		}
	}
	return own
}

// attachment is what differs between the kinds whose credentials Vault generates and
// attaches to an Auth0 authentication method next to the current one, for an overlap:
// private_key_jwt keys, self-signed mTLS certificates. The rotation itself (runAttached)
// is the same for all of them.
type attachment interface {
	CredentialKind
	// method is the client_authentication_methods entry the credentials attach to.
	method() string
	// noun names the credential in messages: "key", "certificate".
	noun() string
	// generate makes the next version's material (its private key, ...) into sec.
	generate(b *Engine, role *model.RoleEntry, sec *model.SecretEntry, now time.Time) error
	// register is what Auth0 registers for sec, under name.
	register(sec *model.SecretEntry, name string) (auth0api.NewCredential, error)
	// describe copies into a new version's meta what the kind records of sec.
	describe(sec *model.SecretEntry, meta *model.VersionMeta)
	// verify proves that Auth0 accepts sec, attached (its KeyID and KID are Auth0's).
	verify(b *Engine, conn *connection, clientID string, sec *model.SecretEntry) error
}

func (keyKind) dueTime(r *model.RoleEntry, now time.Time) time.Time { return overlapDue(r, now) }

// overlapDue is the due time of a kind that attaches credentials with an overlap.
func overlapDue(r *model.RoleEntry, now time.Time) time.Time {
	switch {
	case r.PendingKey != nil:
		// A rotation under way is finished at once (or at the next attempt), or, once its
		// credential is attached, when it may be published.
		return model.Later(model.Later(r.PendingKey.Started, r.PendingKey.PublishAt), r.NextAttempt)
	case r.Overlap != nil:
		// The previous credential is detached at the end of the overlap, scheduled role or
		// not; the next rotation waits for it.
		return model.Later(r.Overlap.Until, r.NextAttempt)
	}
	return r.ScheduledDue(now, 0)
}

func (keyKind) consumerLead(r *model.RoleEntry) time.Duration { return r.OverlapPeriodOrDefault() }

// schemas are private_key_jwt's fields in the API, next to those of every kind that
// attaches credentials (attachmentSchemas).
func (keyKind) schemas() KindSchemas {
	return withAttachmentSchemas(KindSchemas{
		About: `"private_key_jwt": an RSA key pair Vault generates, whose public key it registers and attaches at Auth0 next to the current one, and whose previous key it detaches only overlap_period later (zero downtime)`,
		RoleHelp: `"private_key_jwt" rotates an RSA key pair (key_bits, algorithm) that Vault generates:
each rotation registers the new public key at Auth0 and attaches it next to the current
one, and the previous key stays attached for overlap_period (default 24h) before Vault
detaches and deletes it, so applications that re-read creds within overlap_period never
fail. An application that still authenticates with its client secret is switched to
private_key_jwt at the first rotation only with allow_auth_method_change=true: one-way,
Auth0 refuses the secret from then on. Needs the create:, read:, update: and
delete:client_credentials and update:clients scopes.
`,
		CredsHelp: `For a role with credential_type=private_key_jwt, no client_secret: private_key (PEM,
PKCS #8), key_id (the Auth0 credential id), kid (put it in the assertion's header) and
algorithm; while the previous key is still attached at Auth0, previous_private_key,
previous_key_id, previous_kid and overlap_until too. An application signs its client
assertions (iss = sub = client_id, aud = "https://<domain>/", a unique jti, exp at most
5 minutes ahead) with private_key; either key works until overlap_until.

`,
		Role: map[string]*framework.FieldSchema{
			"algorithm": {
				Type:        framework.TypeString,
				Description: `private_key_jwt roles: signing algorithm registered with the key, "RS256" (default), "RS384" or "PS256".`,
			},
		},
		Read: map[string]*framework.FieldSchema{
			"algorithm": {Type: framework.TypeString, Description: "private_key_jwt roles: signing algorithm."},
			"kid":       {Type: framework.TypeString, Description: "private_key_jwt roles: key id of the current key."},
		},
		Creds: map[string]*framework.FieldSchema{
			"kid":          {Type: framework.TypeString, Description: "private_key_jwt roles: key id to put in the assertion's header."},
			"algorithm":    {Type: framework.TypeString, Description: "private_key_jwt roles: signing algorithm."},
			"previous_kid": {Type: framework.TypeString, Description: "private_key_jwt roles, until overlap_until: key id of the previous key; else empty."},
		},
	})
}

func (keyKind) servesPrevious(r *model.RoleEntry, prev int) bool { return overlapServes(r, prev) }

// overlapServes reports whether version prev is the overlap's, still attached at Auth0.
func overlapServes(r *model.RoleEntry, prev int) bool {
	return r.Overlap != nil && !r.Overlap.Ending && r.Overlap.Version == prev
}

func (keyKind) credsMeta(r *model.RoleEntry, c *model.CredsEntry) { overlapCredsMeta(r, c) }

// overlapCredsMeta is credsMeta of a kind that attaches credentials with an overlap.
func overlapCredsMeta(r *model.RoleEntry, c *model.CredsEntry) {
	c.Next, c.NextSwitchTime = nil, time.Time{}
	if r.Overlap == nil || r.Overlap.Ending {
		c.Previous = nil // detached (or being detached) at Auth0: nothing to fall back to
	} else {
		c.OverlapUntil = r.Overlap.Until
	}
	if r.PendingKey != nil {
		c.PublishAt = r.PendingKey.PublishAt
	}
}

func (keyKind) nextChange(c *model.CredsEntry) time.Time { return overlapNextChange(c) }

// overlapNextChange is nextChange of a kind that attaches credentials with an overlap.
func overlapNextChange(c *model.CredsEntry) time.Time {
	switch {
	case !c.PublishAt.IsZero():
		// A rotation under way: consumers must see the new credential when it is served.
		return model.Later(c.PublishAt, c.NextAttempt)
	case c.RotationPeriod == 0 && c.RotationSchedule == "":
		return time.Time{}
	}
	// A new credential is not made while the previous one is still attached.
	return model.Later(model.Later(c.NextVaultRotation, c.OverlapUntil), c.NextAttempt)
}

func (keyKind) CredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{}) {
	data["private_key"], data["key_id"], data["kid"], data["algorithm"] = served.PrivateKey, served.KeyID, served.KID, served.Algorithm
	if current {
		data["previous_private_key"], data["previous_key_id"], data["previous_kid"], data["overlap_until"] = "", "", "", ""
		if previous != nil {
			data["previous_private_key"], data["previous_key_id"], data["previous_kid"] = previous.PrivateKey, previous.KeyID, previous.KID
			data["overlap_until"] = TimeOrEmpty(c.OverlapUntil)
		}
	}
}

func (keyKind) authenticate(b *Engine, cfg *model.ConfigEntry, c *model.CredsEntry, req *auth0api.TokenRequest) error {
	assertion, err := auth0api.SignAssertion(c.Current.PrivateKey, c.Current.Algorithm, c.Current.KID, c.ClientID, cfg.AssertionAudience(), b.Clock.Now(), verifyAssertionTTL)
	if err != nil {
		return err
	}
	req.Assertion = assertion
	return nil
}

// credentialName names the Auth0 credential of version n of role name on this mount.
func (b *Engine) credentialName(name string, n int) string {
	return b.credentialPrefix(name) + strconv.Itoa(n)
}

func (b *Engine) credentialPrefix(name string) string {
	return "vault/" + b.MountTag + "/" + name + "/v"
}

// ownCredential reports whether cred was registered by role name of this mount.
func (b *Engine) ownCredential(name string, cred auth0api.CredentialInfo) bool {
	rest, ok := strings.CutPrefix(cred.Name, b.credentialPrefix(name))
	if !ok {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// keyAPIOf is the connection's client as a keyAPI.
func keyAPIOf(conn *connection) (keyAPI, error) {
	api, ok := conn.Client.(keyAPI)
	if !ok {
		return nil, errors.New("the Management API client cannot manage credentials")
	}
	return api, nil
}

// runAttached is the part of a role's job (runRoleJob) that the kinds attaching
// credentials run, under the role's lock: finish a rotation under way, end an overlap
// that is over, rotate.
func (j *roleJob) runAttached(ctx context.Context, a attachment) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	conn := j.conn
	if conn == nil {
		var err error
		if conn, err = b.Connection(ctx, j.s); err != nil {
			return j.fail(ctx, nil, err)
		}
	}
	if conn == nil {
		return j.fail(ctx, logical.ErrorResponse(errNotConfigured), nil)
	}
	api, err := keyAPIOf(conn)
	if err != nil {
		return j.fail(ctx, nil, err)
	}
	if role.PendingKey != nil {
		// A rotation under way is finished first; for a manual rotate it is the rotation.
		return j.finishAttached(ctx, conn, api, a)
	}
	if ov := role.Overlap; ov != nil {
		switch {
		case !j.now.Before(ov.Until) || j.opts.EndOverlap:
			if err := j.endOverlap(ctx, api, a); err != nil {
				resp, rerr := Auth0Failure(fmt.Sprintf("detaching the previous %s of %s (client_id %q)", a.noun(), j.holder().describe(), role.ClientID), err)
				return j.fail(ctx, resp, rerr)
			}
		case j.trigger == TriggerManual:
			return nil, logical.ErrorResponse("%s: the previous %s (credentials %s) stays attached at Auth0 until %s (overlap_period), and Auth0 allows %d credentials per application; rotate after that, or pass end_overlap=true to detach it now (applications still using it then fail)",
				j.holder().describe(), a.noun(), strings.Join(ov.CredentialIDs, ", "), ov.Until.Format(time.RFC3339), maxAttachedCredentials), nil
		default:
			return nil, nil, nil
		}
	}
	switch due := DueTime(role, j.now); {
	case j.trigger == TriggerReconcile:
		return nil, nil, nil
	case j.trigger == triggerScheduled && (due.IsZero() || due.After(j.now)):
		return nil, nil, nil // the job ended an overlap; no rotation is due (or ever, unscheduled)
	case j.trigger == triggerScheduled && role.MissedWindow(j.now) && !retryingDrift(role):
		return j.skipMissedWindow(ctx)
	}
	return j.startAttached(ctx, conn, api, a)
}

// startAttached begins a rotation: checks the application, generates and stores the
// material as pending, then finishes it.
func (j *roleJob) startAttached(ctx context.Context, conn *connection, api keyAPI, a attachment) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	what := fmt.Sprintf("rotating the %s of %s (client_id %q)", a.noun(), j.holder().describe(), role.ClientID)
	methods, err := api.AuthMethods(b.ctx, role.ClientID, a.method())
	if err != nil {
		resp, rerr := Auth0Failure(what, err)
		return j.fail(ctx, resp, rerr)
	}
	if methods.Switching() && !role.AllowAuthMethodChange {
		return j.fail(ctx, logical.ErrorResponse("%s: %s", what, authMethodRefusal(role.ClientID, methods, a.method())), nil)
	}
	stored, err := api.ListCredentials(b.ctx, role.ClientID)
	if err != nil {
		resp, rerr := Auth0Failure(what, err)
		return j.fail(ctx, resp, rerr)
	}
	// Credentials this role registered that are neither attached nor current were left
	// by an interrupted run; they count against Auth0's limit, and Vault holds no key for
	// them (or no longer serves it).
	current := ""
	if cur := role.Current(); cur != nil {
		current = cur.KeyID
	}
	var kept []auth0api.CredentialInfo
	for _, cred := range stored {
		if b.ownCredential(j.name, cred) && cred.ID != current && !slices.Contains(methods.Attached, cred.ID) {
			if err := api.DeleteCredential(b.ctx, role.ClientID, cred.ID); err != nil {
				resp, rerr := Auth0Failure(fmt.Sprintf("%s: deleting credential %s, which an interrupted rotation left behind", what, cred.ID), err)
				return j.fail(ctx, resp, rerr)
			}
			b.logger().Info("deleted a credential an interrupted rotation left behind", "role", j.name, "client_id", role.ClientID, "credential_id", cred.ID)
			continue
		}
		kept = append(kept, cred)
	}
	if len(kept) >= maxAttachedCredentials || len(methods.Attached) >= maxAttachedCredentials {
		names := make([]string, 0, len(kept))
		for _, cred := range kept {
			names = append(names, fmt.Sprintf("%s (%q)", cred.ID, cred.Name))
		}
		return j.fail(ctx, logical.ErrorResponse("%s: the application already has %d credentials at Auth0 (%s), Auth0's limit; delete the one that is not in use (Auth0 Dashboard > Applications > Credentials) so that Vault can register the next %s",
			what, len(kept), strings.Join(names, ", "), a.noun()), nil)
	}

	v := role.CurrentVersion() + 1
	pk := &model.PendingKey{Version: v, Name: b.credentialName(j.name, v), Started: j.now.UTC(), Source: j.trigger, Keep: methods.Attached}
	sec := &model.SecretEntry{Version: v, CreatedTime: j.now.UTC(), Source: j.trigger}
	if err := a.generate(b, role, sec, j.now); err != nil {
		return j.fail(ctx, nil, err)
	}
	if err := model.SaveSecret(ctx, j.s, j.name, sec); err != nil {
		return j.fail(ctx, nil, err)
	}
	next := role.Clone()
	next.PendingKey = pk
	if err := j.holder().storeState(ctx, next); err != nil {
		return j.fail(ctx, nil, err)
	}
	*role = *next
	return j.finishAttached(ctx, conn, api, a)
}

// authMethodRefusal says why a role will not switch an application to method.
func authMethodRefusal(clientID string, now *auth0api.AuthMethods, method string) string {
	current := "its " + now.Current() + " credentials"
	if now.UsesSecret() {
		current = "a client secret (token_endpoint_auth_method " + strconv.Quote(now.SecretMethod) + ")"
	}
	return fmt.Sprintf("application %q authenticates with %s; switching it to %s makes Auth0 refuse those at once, a one-way cutover. Set allow_auth_method_change=true on the role to let Vault switch it (its first credential is attached in the same change)", clientID, current, method)
}

// finishAttached takes a pending credential from wherever a run stopped to the current
// version.
func (j *roleJob) finishAttached(ctx context.Context, conn *connection, api keyAPI, a attachment) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	pk := role.PendingKey
	what := fmt.Sprintf("rotating the %s of %s (client_id %q, version %d)", a.noun(), j.holder().describe(), role.ClientID, pk.Version)
	sec, err := model.LoadSecret(ctx, j.s, j.name, nil, pk.Version)
	if err != nil {
		return j.fail(ctx, nil, err)
	}
	stored, err := api.ListCredentials(b.ctx, role.ClientID)
	if err != nil {
		resp, rerr := Auth0Failure(what, err)
		return j.fail(ctx, resp, rerr)
	}
	found := findCredential(stored, pk)
	if sec == nil || sec.PrivateKey == "" {
		// Storage lost the pending key: Auth0 must not keep a key Vault does not hold.
		cause := fmt.Errorf("%s: the pending private key is missing from storage; it is discarded, and a new one is made at the next attempt", what)
		if err := j.dropPendingKey(ctx, api, a, found); err != nil {
			cause = fmt.Errorf("%w (discarding it failed: %w)", cause, err)
		}
		return j.fail(ctx, nil, cause)
	}
	registration, err := a.register(sec, pk.Name)
	if err != nil {
		cause := fmt.Errorf("%s: %w; the pending %s is discarded", what, err, a.noun())
		if err := j.dropPendingKey(ctx, api, a, found); err != nil {
			cause = fmt.Errorf("%w (discarding it failed: %w)", cause, err)
		}
		return j.fail(ctx, nil, cause)
	}
	if found == nil {
		created, err := api.CreateCredential(b.ctx, role.ClientID, registration)
		switch {
		case errors.Is(err, auth0api.ErrOutcomeUnknown):
			b.logger().Warn("Auth0's answer to a credential's creation was lost; looking for it by name", "role", j.name, "client_id", role.ClientID, "name", pk.Name, "error", err)
			if stored, lerr := api.ListCredentials(b.ctx, role.ClientID); lerr == nil {
				found = findCredential(stored, pk)
			}
			if found == nil {
				resp, rerr := Auth0Failure(what, err)
				return j.fail(ctx, resp, rerr) // pending stays: the next attempt looks again
			}
		case err != nil:
			// Auth0 refused the key (a 4xx): nothing was registered.
			resp, rerr := Auth0Failure(what+": registering it", err)
			if status := auth0api.ManagementStatus(err); status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusUnauthorized {
				if derr := j.dropPendingKey(ctx, api, a, nil); derr != nil {
					b.logger().Warn("could not discard a credential Auth0 refused; the next attempt registers it again", "role", j.name, "error", derr)
				}
			}
			return j.fail(ctx, resp, rerr)
		default:
			found = &created
		}
	}
	if pk.CredentialID != found.ID || pk.KID != found.KID {
		next := role.Clone()
		next.PendingKey.CredentialID, next.PendingKey.KID = found.ID, found.KID
		if err := j.holder().storeState(ctx, next); err != nil {
			return j.fail(ctx, nil, err)
		}
		*role = *next
		pk = role.PendingKey
	}

	methods, err := api.AuthMethods(b.ctx, role.ClientID, a.method())
	if err != nil {
		resp, rerr := Auth0Failure(what, err)
		return j.fail(ctx, resp, rerr)
	}
	// Keep what was attached when the rotation started and still exists, unless it has
	// expired: Auth0 refuses to enable an expired credential, and nobody logs in with it.
	// The overlap ends when the first kept credential expires, if that is sooner.
	var keep []string
	var keepUntil time.Time
	now := b.Clock.Now()
	for _, id := range pk.Keep {
		i := slices.IndexFunc(stored, func(c auth0api.CredentialInfo) bool { return c.ID == id })
		if id == pk.CredentialID || i < 0 {
			continue
		}
		if exp := stored[i].ExpiresAt; !exp.IsZero() {
			if !exp.After(now) {
				continue
			}
			keepUntil = earliest(keepUntil, exp)
		}
		keep = append(keep, id)
	}
	attach := append(slices.Clone(keep), pk.CredentialID)
	if !SameSet(methods.Attached, attach) {
		if methods.Switching() && !role.AllowAuthMethodChange {
			return j.fail(ctx, logical.ErrorResponse("%s: %s", what, authMethodRefusal(role.ClientID, methods, a.method())), nil)
		}
		if err := api.AttachCredentials(b.ctx, role.ClientID, a.method(), attach, methods.Switching()); err != nil {
			resp, rerr := Auth0Failure(what+": attaching it", err)
			return j.fail(ctx, resp, rerr)
		}
		if methods.Switching() {
			b.logger().Warn("switched the application's authentication method (allow_auth_method_change)", "role", j.name, "client_id", role.ClientID, "from", methods.Current(), "to", a.method())
		}
	}
	// A credential left out of the overlap because it expired is detached now: delete it,
	// as the end of an overlap would.
	for _, id := range pk.Keep {
		if id != pk.CredentialID && !slices.Contains(keep, id) && slices.ContainsFunc(stored, func(c auth0api.CredentialInfo) bool { return c.ID == id }) {
			if err := api.DeleteCredential(b.ctx, role.ClientID, id); err != nil {
				resp, rerr := Auth0Failure(fmt.Sprintf("%s: deleting credential %s, which expired", what, id), err)
				return j.fail(ctx, resp, rerr)
			}
			b.logger().Info("deleted a credential that expired before the rotation replaced it", "role", j.name, "client_id", role.ClientID, "credential_id", id)
		}
	}
	if pk.AttachedAt.IsZero() {
		// Auth0 holds the key now; it is served once Auth0 has applied the change
		// everywhere. Until then the current key is served, and keeps working.
		next := role.Clone()
		next.PendingKey.AttachedAt = b.Clock.Now().UTC()
		next.PendingKey.PublishAt = next.PendingKey.AttachedAt.Add(conn.Config.PropagationWaitOrDefault())
		next.Succeed()
		if err := j.holder().storeState(ctx, next); err != nil {
			return j.fail(ctx, nil, err)
		}
		*role = *next
		pk = role.PendingKey
	}
	if b.Clock.Now().Before(pk.PublishAt) {
		b.logger().Info("attached the new credential; it is served once Auth0 has applied the change everywhere", "role", j.name, "client_id", role.ClientID, "kind", a.noun(), "version", pk.Version, "publish_at", pk.PublishAt.Format(time.RFC3339))
		return nil, nil, nil // the scheduler comes back at PublishAt
	}
	sec.KeyID, sec.KID = pk.CredentialID, pk.KID
	if err := a.verify(b, conn, role.ClientID, sec); err != nil {
		return j.fail(ctx, nil, fmt.Errorf("%s: %w", what, err))
	}
	version, err := j.commitKey(sec, a, keep, keepUntil, b.Clock.Now())
	if err != nil {
		return j.fail(ctx, nil, fmt.Errorf("%s: Auth0 holds it but storing it failed (%w); it is stored at the next attempt", what, err))
	}
	b.logger().Info("rotated "+a.noun(), "role", j.name, "client_id", role.ClientID, "version", version.Version, "credential_id", version.KeyID, "kid", version.KID, "source", version.Source)
	if role.Overlap != nil && role.OverlapPeriodOrDefault() == 0 {
		if err := j.endOverlap(ctx, api, a); err != nil {
			b.logger().Warn("could not detach the previous credential at once (overlap_period=0); the role's next job does", "role", j.name, "error", err)
		}
	}
	return version, nil, nil
}

// findCredential is the credential of the pending key among stored, or nil.
func findCredential(stored []auth0api.CredentialInfo, pk *model.PendingKey) *auth0api.CredentialInfo {
	for i := range stored {
		if pk.CredentialID != "" && stored[i].ID == pk.CredentialID || pk.CredentialID == "" && stored[i].Name == pk.Name {
			return &stored[i]
		}
	}
	return nil
}

// dropPendingKey abandons a pending key: deletes its credential at Auth0 if it exists
// (detaching it first), then the pending state and its secret entry.
func (j *roleJob) dropPendingKey(ctx context.Context, api keyAPI, a attachment, cred *auth0api.CredentialInfo) error {
	b, role := j.b, j.role
	if cred != nil {
		methods, err := api.AuthMethods(b.ctx, role.ClientID, a.method())
		if err != nil {
			return err
		}
		if slices.Contains(methods.Attached, cred.ID) {
			rest := slices.DeleteFunc(slices.Clone(methods.Attached), func(id string) bool { return id == cred.ID })
			if len(rest) == 0 {
				return fmt.Errorf("its credential %s is the only one attached at Auth0 and stays until a new one replaces it", cred.ID)
			}
			if err := api.AttachCredentials(b.ctx, role.ClientID, a.method(), rest, false); err != nil {
				return err
			}
		}
		if err := api.DeleteCredential(b.ctx, role.ClientID, cred.ID); err != nil {
			return err
		}
	}
	version := role.PendingKey.Version
	next := role.Clone()
	next.PendingKey = nil
	if err := j.holder().storeState(ctx, next); err != nil {
		return err
	}
	*role = *next
	if err := model.DeleteKey(ctx, j.s, model.SecretKey(j.name, version)); err != nil {
		b.logger().Warn("could not delete an abandoned pending credential", "role", j.name, "error", err)
	}
	return nil
}

// endOverlap detaches the previous keys and deletes them, then records that the overlap
// is over. Both Auth0 calls are idempotent, so an interrupted run is simply run again.
func (j *roleJob) endOverlap(ctx context.Context, api keyAPI, a attachment) error {
	b, role := j.b, j.role
	ov, cur := role.Overlap, role.Current()
	if !ov.Ending {
		next := role.Clone()
		next.Overlap.Ending = true
		if err := j.holder().storeState(ctx, next); err != nil {
			return err
		}
		*role = *next
		ov = role.Overlap
	}
	if cur != nil && cur.KeyID != "" {
		methods, err := api.AuthMethods(b.ctx, role.ClientID, a.method())
		if err != nil {
			return err
		}
		if !SameSet(methods.Attached, []string{cur.KeyID}) {
			if err := api.AttachCredentials(b.ctx, role.ClientID, a.method(), []string{cur.KeyID}, false); err != nil {
				return err
			}
		}
		for _, id := range ov.CredentialIDs {
			if id == cur.KeyID {
				continue
			}
			if err := api.DeleteCredential(b.ctx, role.ClientID, id); err != nil {
				return err
			}
		}
	}
	next := role.Clone()
	next.Overlap = nil
	next.Succeed()
	if err := j.holder().storeState(ctx, next); err != nil {
		return err
	}
	*role = *next
	b.logger().Info("detached and deleted the previous credential", "kind", a.noun(), "role", j.name, "client_id", role.ClientID, "credential_ids", strings.Join(ov.CredentialIDs, ","), "previous_version", ov.Version)
	return nil
}

// verifyKey proves that Auth0 accepts the key: it exchanges a client assertion signed with
// it at /oauth/token, polling through Auth0's propagation window. A 403 (authenticated,
// audience not granted) counts as accepted.
func (b *Engine) verifyKey(conn *connection, clientID, privatePEM, alg, kid string) error {
	deadline := b.Clock.Now().Add(b.rootAcceptWait)
	for {
		assertion, err := auth0api.SignAssertion(privatePEM, alg, kid, clientID, conn.Config.AssertionAudience(), b.Clock.Now(), verifyAssertionTTL)
		if err != nil {
			return err
		}
		err = auth0api.VerifyAssertion(b.ctx, b.SettingsOf(conn.Config), clientID, assertion)
		switch forbidden, _ := auth0api.TokenForbidden(err); {
		case err == nil:
			return nil
		case forbidden:
			return nil
		case !auth0api.TokenRefused(err):
			return fmt.Errorf("could not check the new key at /oauth/token: %w", err)
		case !b.Clock.Now().Before(deadline):
			return fmt.Errorf("Auth0 attached the new key but still refuses assertions signed with it after %s", b.rootAcceptWait)
		}
		if err := clock.Sleep(b.ctx, b.Clock, time.Second); err != nil {
			return err
		}
	}
}

// commitKey stores a registered, attached and verified key as the role's next version,
// the keys attached before it as the overlap: the secret entry (now with its credential),
// then creds, then the role (the commit point), retried whole on a storage error.
func (j *roleJob) commitKey(sec *model.SecretEntry, a attachment, keep []string, keepUntil, now time.Time) (*model.VersionMeta, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.b.ctx), commitTimeout)
	defer cancel()
	role := j.role
	pk := role.PendingKey
	if pk.Version != role.CurrentVersion()+1 {
		return nil, fmt.Errorf("the pending key is version %d but the role is at version %d", pk.Version, role.CurrentVersion())
	}
	next := role.Clone()
	next.PendingKey = nil
	info := model.VersionMeta{Source: pk.Source, KeyID: pk.CredentialID}
	a.describe(sec, &info)
	meta, dropped := next.AddVersion(info, now)
	next.LastVaultRotation = now.UTC()
	next.NextVaultRotation = nextAfterRotation(role, now)
	next.Succeed()
	next.Warning = ""
	next.Overlap = nil
	if len(keep) > 0 {
		ov := &model.KeyOverlap{CredentialIDs: keep, Until: earliest(now.Add(role.OverlapPeriodOrDefault()), keepUntil).UTC()}
		if cur := role.Current(); cur != nil && slices.Contains(keep, cur.KeyID) && next.Version(cur.Version) != nil {
			ov.Version = cur.Version
		}
		next.Overlap = ov
	}
	cur := *sec
	cur.Version, cur.CreatedTime, cur.Source = meta.Version, meta.CreatedTime, pk.Source
	cur.KeyID, cur.KID = pk.CredentialID, pk.KID
	creds := &model.CredsEntry{Current: &cur}
	CredsMeta(next, creds)
	if err := j.holder().CommitVersion(ctx, role, next, creds, len(dropped) > 0); err != nil {
		return nil, err
	}
	return meta, nil
}

// SameSet reports whether a and b hold the same ids.
func SameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

func (k keyKind) driftOf(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, _ *model.CredsEntry) (string, error) {
	return attachedDrift(ctx, b, conn, role, k)
}
