package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// self_signed_tls_client_auth roles (credential_type=self_signed_tls_client_auth) rotate a
// self-signed X.509 client certificate with which the application authenticates to Auth0
// over mutual TLS. Auth0 never sees the TLS handshake: the tenant's edge (a reverse proxy
// on its custom domain) terminates it and forwards the certificate to Auth0, which accepts
// the application when the certificate is one attached to its self_signed_tls_client_auth
// method. Like keys, up to two certificates may be attached at once, so a rotation
// overlaps for real; the rotation itself is runAttached's (keys.go).
//
// Vault generates the key pair and the certificate; neither leaves Vault except through
// creds. A certificate expires: the engine renews it once two thirds of its lifetime
// have passed, whatever the role's schedule, so that it never serves a certificate Auth0
// refuses for its age.

const (
	minCertificateTTL = time.Hour
	// certificateBackdate is how long before its creation a certificate is valid from,
	// for the clocks of the edge and Auth0.
	certificateBackdate = time.Minute
)

// certKind is credential_type=self_signed_tls_client_auth.
type certKind struct{}

func (certKind) CredentialType() string { return model.CredentialSelfSignedTLS }
func (certKind) Strategy() string       { return "" }
func (certKind) rotates() string {
	return "self-signed mTLS certificates (end_overlap=true is its option)"
}
func (certKind) ownFields() []string {
	return []string{"key_bits", "overlap_period", "allow_auth_method_change", "certificate_ttl"}
}
func (certKind) options() []string { return []string{"end_overlap"} }
func (certKind) method() string    { return auth0api.MethodSelfSignedTLS }
func (certKind) noun() string      { return "certificate" }

// ApplyFields validates and applies the certificate settings.
func (certKind) ApplyFields(role *model.RoleEntry, d *framework.FieldData, creating bool, now time.Time) *logical.Response {
	if creating && !FieldSet(d, "overlap_period") {
		role.OverlapPeriod = defaultOverlapPeriod
	}
	if raw, ok := d.GetOk("token_audiences"); ok && len(raw.([]string)) > 0 || !ok && len(role.TokenAudiences) > 0 {
		return logical.ErrorResponse("token_audiences does not apply to self_signed_tls_client_auth roles: Auth0 takes their certificate only through the tenant's mTLS edge, which Vault does not call; applications request their tokens there with the certificate creds serve")
	}
	if resp := applyKeyBits(role, d); resp != nil {
		return resp
	}
	if raw, ok := d.GetOk("certificate_ttl"); ok {
		ttl := time.Duration(raw.(int)) * time.Second
		if ttl != 0 && ttl < minCertificateTTL {
			return logical.ErrorResponse("certificate_ttl must be 0 (the default, %s) or at least %s, got %s", model.DefaultCertificateTTL, minCertificateTTL, ttl)
		}
		role.CertificateTTL = ttl
	}
	if resp := applyOverlapFields(role, d, now); resp != nil {
		return resp
	}
	if problem := certLifetimeProblem(role); problem != "" {
		return logical.ErrorResponse("%s", problem)
	}
	return nil
}

// certLifetimeProblem says why certificate_ttl is too short for the role's rotation and
// overlap, "" when it is not.
func certLifetimeProblem(role *model.RoleEntry) string {
	if need := role.RotationPeriod + role.OverlapPeriodOrDefault(); role.RotationPeriod > 0 && role.CertificateTTLOrDefault() <= need {
		return fmt.Sprintf("certificate_ttl (%s) must be longer than rotation_period plus overlap_period (%s): a certificate must outlive its overlap", role.CertificateTTLOrDefault(), need)
	}
	return ""
}

func (certKind) scheduleProblem(role *model.RoleEntry, now time.Time) string {
	if problem := overlapProblem(role, now); problem != "" {
		return problem
	}
	return certLifetimeProblem(role)
}

func (k certKind) CheckApplication(ctx context.Context, conn *connection, role *model.RoleEntry) (*logical.Response, error) {
	return checkAuthMethod(ctx, conn, role, k.method())
}

func (k certKind) applicationProblem(role *model.RoleEntry, methods *auth0api.AuthMethods) string {
	return attachedMethodProblem(role, methods, k.method())
}

func (certKind) ReadFields(role *model.RoleEntry, data map[string]interface{}) {
	attachmentReadFields(role, data)
	data["certificate_ttl"] = int64(role.CertificateTTLOrDefault().Seconds())
	if cur := role.Current(); cur != nil {
		data["thumbprint_sha256"] = cur.Thumbprint
		AddTime(data, "expires_at", cur.ExpiresAt)
	}
}

func (k certKind) run(ctx context.Context, j *roleJob) (*model.VersionMeta, *logical.Response, error) {
	return j.runAttached(ctx, k)
}

// generate makes an RSA key pair and a certificate for it, signed by itself, valid for
// certificate_ttl.
func (certKind) generate(b *Engine, role *model.RoleEntry, sec *model.SecretEntry, now time.Time) error {
	privatePEM, _, err := b.GenerateKey(role.KeyBitsOrDefault())
	if err != nil {
		return err
	}
	expires := now.Add(role.CertificateTTLOrDefault()).UTC().Truncate(time.Second)
	certPEM, thumbprint, err := auth0api.SelfSignedCertificate(privatePEM, role.ClientID, now.Add(-certificateBackdate), expires)
	if err != nil {
		return err
	}
	sec.PrivateKey, sec.Certificate, sec.Thumbprint, sec.ExpiresAt = privatePEM, certPEM, thumbprint, expires
	return nil
}

func (certKind) register(sec *model.SecretEntry, name string) (auth0api.NewCredential, error) {
	if sec.Certificate == "" {
		return auth0api.NewCredential{}, errors.New("the pending version has no certificate")
	}
	return auth0api.NewCredential{Type: auth0api.CredentialX509Cert, Name: name, PEM: sec.Certificate}, nil
}

func (certKind) describe(sec *model.SecretEntry, meta *model.VersionMeta) {
	meta.CertVersion = sec.CertVersion
}

// verify checks that the credential Auth0 holds is this certificate. Vault cannot prove
// that Auth0 accepts it (only the tenant's mTLS edge can present it), so the new
// certificate is served once Auth0 had propagation_wait to apply the attachment.
func (certKind) verify(b *Engine, conn *connection, clientID string, sec *model.SecretEntry) error {
	api, err := keyAPIOf(conn)
	if err != nil {
		return err
	}
	stored, err := api.ListCredentials(b.ctx, clientID)
	if err != nil {
		return fmt.Errorf("could not read back the certificate's credential: %w", err)
	}
	for _, cred := range stored {
		if cred.ID != sec.KeyID {
			continue
		}
		if cred.Thumbprint != "" && cred.Thumbprint != sec.Thumbprint {
			return fmt.Errorf("Auth0's credential %s has thumbprint %s, not the certificate's %s", cred.ID, cred.Thumbprint, sec.Thumbprint)
		}
		return nil
	}
	return fmt.Errorf("Auth0 no longer lists the certificate's credential %s", sec.KeyID)
}

// dueTime is the overlap kinds' due time, brought forward to the current certificate's
// renewal: two thirds into its lifetime.
func (certKind) dueTime(r *model.RoleEntry, now time.Time) time.Time {
	due := overlapDue(r, now)
	if r.PendingKey != nil || r.Overlap != nil {
		return due
	}
	if cur := r.Current(); cur != nil {
		return earliest(due, model.Later(renewalTime(cur.CreatedTime, cur.ExpiresAt), r.NextAttempt))
	}
	return due
}

// renewalTime is when a certificate valid from created to expires is renewed; zero when
// it has no expiry.
func renewalTime(created, expires time.Time) time.Time {
	if expires.IsZero() {
		return time.Time{}
	}
	return created.Add(expires.Sub(created) * 2 / 3)
}

// earliest is the earlier of two times, a zero one counting as none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

func (certKind) consumerLead(r *model.RoleEntry) time.Duration { return r.OverlapPeriodOrDefault() }

func (certKind) servesPrevious(r *model.RoleEntry, prev int) bool { return overlapServes(r, prev) }

func (certKind) credsMeta(r *model.RoleEntry, c *model.CredsEntry) { overlapCredsMeta(r, c) }

func (certKind) nextChange(c *model.CredsEntry) time.Time {
	next := overlapNextChange(c)
	if c.PublishAt.IsZero() && c.Current != nil && !c.Halted {
		next = earliest(next, model.Later(renewalTime(c.Current.CreatedTime, c.Current.ExpiresAt), c.NextAttempt))
	}
	return next
}

func (certKind) CredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{}) {
	data["certificate"], data["private_key"], data["key_id"] = served.Certificate, served.PrivateKey, served.KeyID
	data["thumbprint_sha256"], data["expires_at"] = served.Thumbprint, TimeOrEmpty(served.ExpiresAt)
	if !current {
		return
	}
	data["previous_certificate"], data["previous_private_key"], data["previous_key_id"] = "", "", ""
	data["previous_thumbprint_sha256"], data["previous_expires_at"], data["overlap_until"] = "", "", ""
	if previous != nil {
		data["previous_certificate"], data["previous_private_key"], data["previous_key_id"] = previous.Certificate, previous.PrivateKey, previous.KeyID
		data["previous_thumbprint_sha256"], data["previous_expires_at"] = previous.Thumbprint, TimeOrEmpty(previous.ExpiresAt)
		data["overlap_until"] = TimeOrEmpty(c.OverlapUntil)
	}
}

func (certKind) authenticate(*Engine, *model.ConfigEntry, *model.CredsEntry, *auth0api.TokenRequest) error {
	return errors.New("self_signed_tls_client_auth roles have no token/: Auth0 takes their certificate only through the tenant's mTLS edge")
}

func (certKind) schemas() KindSchemas {
	return withAttachmentSchemas(KindSchemas{
		About: `"self_signed_tls_client_auth": a key pair and a self-signed client certificate for mTLS through the tenant's edge, attached and overlapped the same way`,
		RoleHelp: `"self_signed_tls_client_auth" rotates a key pair (key_bits) and a self-signed client
certificate valid for certificate_ttl (default 365 days), attached to the application's
self_signed_tls_client_auth method and overlapped like keys; the application presents it
to the tenant's mTLS edge (an Enterprise tenant with mTLS and a custom domain). The
engine renews a certificate two thirds into its lifetime whatever the schedule.

`,
		CredsHelp: `For a role with credential_type=self_signed_tls_client_auth: certificate (PEM,
self-signed), private_key (its key, PEM, PKCS #8), key_id (the Auth0 credential id),
thumbprint_sha256 and expires_at; while the previous certificate is still attached at
Auth0, previous_certificate, previous_private_key, previous_key_id,
previous_thumbprint_sha256, previous_expires_at and overlap_until (never past the
previous certificate's expiry).
The application presents the certificate in the TLS handshake with the tenant's mTLS
edge (mtls.<custom domain>/oauth/token, client_id in the body, no secret); either
certificate works until overlap_until.

`,
		Role: map[string]*framework.FieldSchema{
			"certificate_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("self_signed_tls_client_auth roles: how long each certificate is valid. Default %s, at least %s, longer than rotation_period plus overlap_period. The engine renews a certificate two thirds into its lifetime whatever the schedule.", model.DefaultCertificateTTL, minCertificateTTL),
			},
		},
		Read: map[string]*framework.FieldSchema{
			"certificate_ttl":   {Type: framework.TypeInt64, Description: "self_signed_tls_client_auth roles: seconds each certificate is valid."},
			"thumbprint_sha256": {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles: SHA-256 thumbprint of the current certificate (base64url), as Auth0 lists it."},
			"expires_at":        {Type: framework.TypeTime, Description: "self_signed_tls_client_auth roles: when the current certificate expires."},
		},
		Creds: map[string]*framework.FieldSchema{
			"certificate":                {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles: the client certificate (PEM), self-signed, to present to the tenant's mTLS edge."},
			"thumbprint_sha256":          {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles: SHA-256 thumbprint of the certificate (base64url)."},
			"expires_at":                 {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles: when the certificate expires (RFC 3339); the engine renews it two thirds into its lifetime."},
			"previous_certificate":       {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles, until overlap_until: the previous certificate, still attached at Auth0; else empty."},
			"previous_thumbprint_sha256": {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles, until overlap_until: thumbprint of the previous certificate; else empty."},
			"previous_expires_at":        {Type: framework.TypeString, Description: "self_signed_tls_client_auth roles, until overlap_until: when the previous certificate expires; else empty."},
		},
	})
}

func (k certKind) driftOf(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, _ *model.CredsEntry) (string, error) {
	return attachedDrift(ctx, b, conn, role, k)
}
