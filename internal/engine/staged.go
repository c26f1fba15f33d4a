package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// The staged strategy (rotation_strategy=staged) makes a rotation cost consumers nothing.
// Auth0 holds one secret per application, so there is no overlap at Auth0; instead Vault
// chooses the next secret itself and publishes it (creds' next_client_secret) for
// stage_period before it sets it on Auth0 with PATCH /api/v2/clients/{id}. A consumer
// that falls back to next_client_secret on a 401 never sees an outage.
//
// It is crash-safe by construction: the secret is stored before Auth0 hears of it, so the
// PATCH is idempotent, and any failure or crash between storing and committing is resolved
// by PATCHing the same secret again. No write-ahead entry and no read-back are needed.

// RotateOptions are a manual rotate's requests for a staged role.
type RotateOptions struct {
	SwitchNow    bool // stage if needed, and switch now
	CancelStaged bool // discard the staged secret
	EndOverlap   bool // private_key_jwt: detach the previous key now
}

// stagedKind is credential_type=client_secret with rotation_strategy=staged.
type stagedKind struct{}

func (stagedKind) CredentialType() string { return model.CredentialClientSecret }
func (stagedKind) Strategy() string       { return model.StrategyStaged }
func (stagedKind) rotates() string        { return "with a staged secret" }
func (stagedKind) ownFields() []string    { return []string{"stage_period", "password_policy"} }
func (stagedKind) options() []string      { return []string{"switch_now", "cancel_staged"} }

// ApplyFields validates and applies stage_period and password_policy (whose policy the
// role write checks exists).
func (stagedKind) ApplyFields(role *model.RoleEntry, d *framework.FieldData, _ bool, now time.Time) *logical.Response {
	if raw, ok := d.GetOk("stage_period"); ok {
		period := time.Duration(raw.(int)) * time.Second
		if period < model.MinRotationPeriod && period != 0 {
			return logical.ErrorResponse("stage_period must be at least %s, got %s", model.MinRotationPeriod, period)
		}
		role.StagePeriod = period
	}
	if raw, ok := d.GetOk("password_policy"); ok {
		role.PasswordPolicy = strings.TrimSpace(raw.(string))
	}
	if problem := (stagedKind{}).scheduleProblem(role, now); problem != "" {
		return logical.ErrorResponse("%s", problem)
	}
	return nil
}

// scheduleProblem: the next secret is published stage_period before each rotation, so
// stage_period must be shorter than the time between rotations.
func (stagedKind) scheduleProblem(role *model.RoleEntry, now time.Time) string {
	stage := role.StagePeriodOrDefault()
	if role.RotationPeriod > 0 && stage >= role.RotationPeriod {
		return fmt.Sprintf("stage_period (%s%s) must be shorter than rotation_period (%s): the next secret is published stage_period before each rotation; set a shorter stage_period",
			stage, defaultNote(role.StagePeriod), role.RotationPeriod)
	}
	if role.RotationSchedule != "" {
		if gap := role.ShortestScheduleGap(now); gap > 0 && stage >= gap {
			return fmt.Sprintf("stage_period (%s%s) must be shorter than the shortest interval between rotation_schedule's times (%s); set a shorter stage_period",
				stage, defaultNote(role.StagePeriod), gap)
		}
	}
	return ""
}

// applicationProblem: a staged secret is a client secret.
func (stagedKind) applicationProblem(role *model.RoleEntry, methods *auth0api.AuthMethods) string {
	return secretMethodProblem(role.ClientID, methods)
}

func (stagedKind) CheckApplication(context.Context, *connection, *model.RoleEntry) (*logical.Response, error) {
	return nil, nil
}

func (stagedKind) ReadFields(role *model.RoleEntry, data map[string]interface{}) {
	data["stage_period"] = int64(role.StagePeriodOrDefault().Seconds())
	data["password_policy"] = role.PasswordPolicy
	if st := role.Staged; st != nil {
		data["next_version"] = st.Version
		AddTime(data, "next_switch_time", st.SwitchTime)
	}
}

func (stagedKind) run(ctx context.Context, j *roleJob) (*model.VersionMeta, *logical.Response, error) {
	return j.resolveThenRotate(ctx, j.runStaged)
}

func (stagedKind) dueTime(r *model.RoleEntry, now time.Time) time.Time {
	if r.Staged != nil {
		if r.Staged.Switching {
			// A switch that started (Auth0 may hold the secret already) is finished at once,
			// also on a node whose clock is behind the one that started it.
			return model.Later(earliest(r.Staged.SwitchTime, now), r.NextAttempt)
		}
		// A staged secret switches at its time, scheduled role or not.
		return model.Later(r.Staged.SwitchTime, r.NextAttempt)
	}
	// The next secret is published stage_period before the rotation.
	return r.ScheduledDue(now, r.StagePeriodOrDefault())
}

func (stagedKind) consumerLead(r *model.RoleEntry) time.Duration { return r.StagePeriodOrDefault() }

// schemas are the staged strategy's fields in the API.
func (stagedKind) schemas() KindSchemas {
	return KindSchemas{
		Role: map[string]*framework.FieldSchema{
			"stage_period": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("Staged roles: how long the next secret is published before it becomes current. Default %s; shorter than rotation_period (and than the interval between rotation_schedule's times).", model.DefaultStagePeriod),
			},
			"password_policy": {
				Type:        framework.TypeString,
				Description: "Staged roles: name of a Vault password policy (sys/policies/password) that generates the secrets. Default: 64 characters of [A-Za-z0-9_-] from crypto/rand, as Auth0 generates them. An empty value restores the default.",
			},
		},
		Read: map[string]*framework.FieldSchema{
			"stage_period":     {Type: framework.TypeInt64, Description: "Staged roles: seconds a next secret is published before it becomes current."},
			"password_policy":  {Type: framework.TypeString, Description: "Staged roles: Vault password policy generating the secrets; empty: the default generator."},
			"next_version":     {Type: framework.TypeInt, Description: "Staged roles, while a next secret is staged: its version."},
			"next_switch_time": {Type: framework.TypeTime, Description: "Staged roles, while a next secret is staged: when it becomes current."},
		},
		Creds: secretCredsSchemas(),
		CredsHelp: `For a role with rotation_strategy=staged, while a next secret is staged (from
stage_period before each rotation until the switch) next_client_secret, next_version and
next_switch_time hold it. Two ways to consume it with zero downtime:

  (a) an application that authenticates with client_secret: on a 401 from Auth0, retry
      with next_client_secret, then with previous_client_secret, and keep cycling through
      them for a while: Auth0 may take up to 30 seconds to accept a new secret
      everywhere, answering for the old or the new one from request to request;
  (b) an application that only verifies HS256 ID tokens signed with the secret: accept a
      signature by client_secret, previous_client_secret or next_client_secret.

`,
	}
}

func (stagedKind) servesPrevious(*model.RoleEntry, int) bool { return true }

func (stagedKind) credsMeta(r *model.RoleEntry, c *model.CredsEntry) {
	c.StagePeriod = r.StagePeriodOrDefault()
	c.NextSwitchTime = time.Time{}
	if r.Staged != nil {
		c.NextSwitchTime = r.Staged.SwitchTime
	} else {
		c.Next = nil
	}
}

func (stagedKind) nextChange(c *model.CredsEntry) time.Time {
	switch {
	case c.Next != nil:
		// A staged secret: consumers must see the switch.
		return model.Later(c.NextSwitchTime, c.NextAttempt)
	case c.RotationPeriod == 0 && c.RotationSchedule == "":
		return time.Time{}
	}
	// Consumers must see the next secret when it is published.
	return model.Later(c.NextVaultRotation.Add(-c.StagePeriod), c.NextAttempt)
}

func (stagedKind) CredsFields(c *model.CredsEntry, served, previous *model.SecretEntry, current bool, data map[string]interface{}) {
	secretCredsFields(c, served, previous, current, data)
}

func (stagedKind) authenticate(b *Engine, cfg *model.ConfigEntry, c *model.CredsEntry, req *auth0api.TokenRequest) error {
	return secretKind{}.authenticate(b, cfg, c, req)
}

// runStaged is the part of a role's job (runRoleJob) that the staged strategy runs, under
// the role's lock: cancel, stage, or switch, as the trigger and the time say.
func (j *roleJob) runStaged(ctx context.Context) (*model.VersionMeta, *logical.Response, error) {
	b, role := j.b, j.role
	if j.opts.CancelStaged {
		if role.Staged == nil {
			return nil, nil, nil
		}
		if role.Staged.Switching || !j.now.Before(role.Staged.SwitchTime) {
			// A PATCH may have reached Auth0 already: only finishing is safe. Switching,
			// stored before any PATCH, decides it whatever this node's clock says.
			return nil, logical.ErrorResponse("the staged secret (version %d) is switching since %s and may already be set at Auth0; it can only be finished (switch_now=true), not cancelled",
				role.Staged.Version, role.Staged.SwitchTime.Format(time.RFC3339)), nil
		}
		if err := b.cancelStagedLocked(ctx, j.s, j.name, role, j.now); err != nil {
			return j.fail(ctx, nil, err)
		}
		return nil, nil, nil
	}
	if role.Staged == nil {
		switchAt := model.Later(role.NextVaultRotation, j.now.Add(role.StagePeriodOrDefault()))
		if j.trigger == TriggerManual {
			switchAt = j.now.Add(role.StagePeriodOrDefault())
		}
		if j.opts.SwitchNow {
			switchAt = j.now
		}
		if err := b.stageLocked(ctx, j.s, j.name, role, switchAt, j.now); err != nil {
			return j.fail(ctx, nil, err)
		}
	}
	// A switch that started is finished whatever this node's clock says of its time.
	early := j.now.Before(role.Staged.SwitchTime) && !role.Staged.Switching
	if early && !j.opts.SwitchNow {
		return nil, nil, nil // published; it switches at its time
	}
	if !role.Staged.Switching || early {
		// Record that the switch has started before any PATCH goes out: from then on it
		// can only be finished, never cancelled, and after a crash the role is due at
		// once, so the switch is retried rather than waiting for the old time while Auth0
		// may already hold the new secret.
		next := role.Clone()
		next.Staged.Switching = true
		if early {
			next.Staged.SwitchTime = j.now.UTC()
		}
		if err := b.StoreRoleState(ctx, j.s, j.name, next); err != nil {
			return j.fail(ctx, nil, err)
		}
		*role = *next
	}
	conn, err := b.Connection(ctx, j.s)
	if err != nil {
		return j.fail(ctx, nil, err)
	}
	if conn == nil {
		return j.fail(ctx, logical.ErrorResponse(errNotConfigured), nil)
	}
	version, resp, err := b.switchStagedLocked(ctx, j.s, j.name, role, conn)
	if resp != nil || err != nil {
		return j.fail(ctx, resp, err)
	}
	return version, nil, nil
}

// stageLocked generates the role's next secret and publishes it, to switch at switchAt:
// the secret entry first, then creds (next_client_secret), then the role, whose staged
// state is the commit point. Nothing changes at Auth0.
func (b *Engine) stageLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, switchAt, now time.Time) error {
	secret, err := b.GenerateSecret(ctx, role.PasswordPolicy)
	if err != nil {
		return err
	}
	next := role.Clone()
	next.Staged = &model.StagedSecret{Version: role.CurrentVersion() + 1, StagedTime: now.UTC(), SwitchTime: switchAt.UTC()}
	next.Succeed()
	sec := &model.SecretEntry{Version: next.Staged.Version, Secret: secret, CreatedTime: now.UTC(), Source: model.SourceStaged}
	if err := model.SaveSecret(ctx, s, name, sec); err != nil {
		return err
	}
	if creds, err := model.LoadCreds(ctx, s, name); err != nil {
		return err
	} else if creds != nil {
		creds.Next = sec
		CredsMeta(next, creds)
		if err := b.putCreds(ctx, s, name, creds); err != nil {
			return err
		}
	}
	if err := model.SaveRole(ctx, s, name, next); err != nil {
		return err
	}
	*role = *next
	b.logger().Info("staged the next client secret", "role", name, "client_id", role.ClientID, "next_version", sec.Version, "switch_time", role.Staged.SwitchTime.Format(time.RFC3339))
	return nil
}

// switchStagedLocked sets the staged secret on Auth0 (PATCH, idempotent: a retry after
// any failure sends the same secret), checks it where the scopes allow, and makes it the
// current version.
func (b *Engine) switchStagedLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, conn *connection) (*model.VersionMeta, *logical.Response, error) {
	staged := role.Staged
	sec, err := model.LoadSecret(ctx, s, name, nil, staged.Version)
	if err != nil {
		return nil, nil, err
	}
	if sec == nil || sec.Source != model.SourceStaged {
		// Storage lost the staged secret; it never reached Auth0 unless a PATCH went out,
		// which can only have sent this very entry: stage anew.
		if err := b.cancelStagedLocked(ctx, s, name, role, b.Clock.Now()); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("role %q: the staged secret (version %d) is missing from storage; it was discarded and a new one is staged at the next attempt", name, staged.Version)
	}
	what := fmt.Sprintf("setting the staged secret of role %q (client_id %q, version %d) on Auth0", name, role.ClientID, staged.Version)
	if err := conn.Client.SetClientSecret(b.ctx, role.ClientID, sec.Secret); err != nil {
		if errors.Is(err, auth0api.ErrOutcomeUnknown) {
			b.logger().Warn("Auth0's answer to the staged secret's PATCH was lost; the same secret is set again at the next attempt", "role", name, "error", err)
		}
		resp, rerr := Auth0Failure(what, err)
		return nil, resp, rerr
	}
	verified, err := b.verifySwitch(conn, role.ClientID, sec.Secret)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	version, err := b.commit(s, name, role, sec.Secret, model.VersionMeta{Source: model.SourceStaged, StagedTime: staged.StagedTime, Verified: verified}, b.Clock.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("Auth0 holds the staged secret of role %q but storing the switch failed (%w); the same secret is set again and stored at the next attempt", name, err)
	}
	b.logger().Info("switched to the staged client secret", "role", name, "client_id", role.ClientID, "version", version.Version, "verified", verified)
	return version, nil, nil
}

// verifySwitch checks that Auth0 holds secret for clientID after a PATCH it accepted: by
// reading it back when the Management API application may (read:client_keys), else by
// authenticating with it at /oauth/token, polling through Auth0's propagation window. It
// says which check was made; an error only when a check shows Auth0 holds another secret.
func (b *Engine) verifySwitch(conn *connection, clientID, secret string) (string, error) {
	info, err := conn.Client.ReadClient(b.ctx, clientID, true)
	switch {
	case err == nil && info.Secret == secret:
		return model.VerifiedReadBack, nil
	case err == nil:
		return "", errors.New("after the PATCH Auth0 holds another secret (something else changed it); the staged secret is set again at the next attempt")
	case !lacksReadClientKeys(err):
		b.logger().Warn("could not read the switched secret back; trying a token instead", "client_id", clientID, "error", err)
	}
	app := conn.Config.WithSecret(secret)
	app.ClientID = clientID
	deadline := b.Clock.Now().Add(b.rootAcceptWait)
	for {
		err := auth0api.VerifyCredentials(b.ctx, b.SettingsOf(app))
		switch forbidden, code := auth0api.TokenForbidden(err); {
		case err == nil:
			return model.VerifiedToken, nil
		case forbidden:
			if code == "unauthorized_client" {
				return model.VerifiedNone, nil // no client-credentials grant: the secret cannot be exercised
			}
			return model.VerifiedToken, nil // authenticated; only the audience is not granted
		case !auth0api.CredentialsRejected(err):
			b.logger().Warn("could not check the switched secret at /oauth/token", "client_id", clientID, "error", err)
			return model.VerifiedNone, nil
		case !b.Clock.Now().Before(deadline):
			return "", fmt.Errorf("Auth0 accepted the PATCH but still refuses the secret at /oauth/token after %s", b.rootAcceptWait)
		}
		if err := clock.Sleep(b.ctx, b.Clock, time.Second); err != nil {
			return model.VerifiedNone, nil
		}
	}
}

// cancelStagedLocked discards the staged secret, which never reached Auth0 (or, if a
// PATCH did go out, was answered with a failure), and records the cancellation.
func (b *Engine) cancelStagedLocked(ctx context.Context, s logical.Storage, name string, role *model.RoleEntry, now time.Time) error {
	staged := role.Staged
	next := role.Clone()
	next.Staged = nil
	next.Cancelled = append(next.Cancelled, &model.CancelledStage{Version: staged.Version, StagedTime: staged.StagedTime, CancelledTime: now.UTC()})
	if n := len(next.Cancelled) - model.MaxCancelledStages; n > 0 {
		next.Cancelled = append([]*model.CancelledStage(nil), next.Cancelled[n:]...)
	}
	// The role first: once it no longer stages the secret, nothing will set it on Auth0;
	// creds still publishing it for a moment (or after a crash, until the role's next
	// write) costs a consumer at most a refused try.
	if err := model.SaveRole(ctx, s, name, next); err != nil {
		return err
	}
	*role = *next
	if creds, err := model.LoadCreds(ctx, s, name); err == nil && creds != nil {
		CredsMeta(role, creds)
		err = b.putCreds(ctx, s, name, creds)
		if err != nil {
			b.logger().Warn("could not withdraw a cancelled staged secret from creds; the role's next write does", "role", name, "error", err)
		}
	}
	if err := model.DeleteKey(ctx, s, model.SecretKey(name, staged.Version)); err != nil {
		b.logger().Warn("could not delete a cancelled staged secret", "role", name, "error", err)
	}
	b.logger().Info("cancelled the staged client secret", "role", name, "next_version", staged.Version)
	return nil
}

// GenerateSecret makes a new client secret: from the role's Vault password policy if it
// names one, else 64 characters of Auth0's own alphabet from crypto/rand.
func (b *Engine) GenerateSecret(ctx context.Context, policy string) (string, error) {
	if policy == "" {
		return GenerateClientSecret()
	}
	secret, err := b.host.System().GeneratePasswordFromPolicy(ctx, policy)
	if err != nil {
		return "", fmt.Errorf("generating a secret from password policy %q: %w", policy, err)
	}
	return secret, nil
}

func (stagedKind) driftOf(ctx context.Context, b *Engine, conn *connection, role *model.RoleEntry, creds *model.CredsEntry) (string, error) {
	return secretDrift(ctx, b, conn, role, creds)
}
