package auth0

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathStatus(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "status$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "auth0",
			OperationVerb:   "read",
			OperationSuffix: "status",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:    b.pathStatusRead,
				Summary:     "Read the mount's health, for a monitoring poll.",
				Description: pathStatusHelpDesc,
				Responses:   statusResponses,
			},
		},
		HelpSynopsis:    pathStatusHelpSyn,
		HelpDescription: pathStatusHelpDesc,
	}}
}

// pathStatusRead summarizes the mount for alerting. It reads every role (one storage read
// each) and the write-ahead entries: meant for a monitoring poll, not the hot path.
func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	now := b.Clock.Now()
	names, err := req.Storage.List(ctx, model.RoleStoragePrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	failing := []interface{}{}
	drifted := []interface{}{}
	overdue := []interface{}{}
	blocked := []interface{}{}
	inFlight := []interface{}{}
	unreadable := []string{}
	for _, name := range names {
		role, err := model.LoadRole(ctx, req.Storage, name)
		if err != nil {
			unreadable = append(unreadable, name)
			continue
		}
		if role == nil {
			continue
		}
		if f := role.LastFailure; f != nil {
			entry := failureData(f, role.NextAttempt)
			entry["role"] = name
			failing = append(failing, entry)
		}
		if dr := role.DriftDetected; dr != nil {
			drifted = append(drifted, map[string]interface{}{"role": name, "since": dr.Time.UTC().Format(time.RFC3339), "what": dr.What, "drift_action": driftAction(role)})
		}
		if role.Blocked != "" {
			blocked = append(blocked, map[string]interface{}{"role": name, "reason": role.Blocked})
		}
		if due := engine.DueTime(role, now); !due.IsZero() && now.Sub(due) > engine.OverdueGrace {
			overdue = append(overdue, map[string]interface{}{
				"role": name, "due": due.UTC().Format(time.RFC3339), "overdue_seconds": int64(now.Sub(due).Seconds()),
			})
		}
		switch {
		case role.PendingKey != nil:
			inFlight = append(inFlight, map[string]interface{}{"role": name, "what": "private_key_jwt key attached, not yet published", "version": role.PendingKey.Version, "since": role.PendingKey.Started.UTC().Format(time.RFC3339)})
		case role.Staged != nil && !now.Before(role.Staged.SwitchTime):
			inFlight = append(inFlight, map[string]interface{}{"role": name, "what": "staged secret switching", "version": role.Staged.Version, "since": role.Staged.SwitchTime.UTC().Format(time.RFC3339)})
		}
	}
	pending, err := b.PendingRotations(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	for _, p := range pending {
		inFlight = append(inFlight, map[string]interface{}{"role": p.WAL.Role, "what": "rotation whose outcome is being resolved (write-ahead entry)", "wal_id": p.ID})
	}
	data := map[string]interface{}{
		"roles":                len(names),
		"roles_failing":        failing,
		"roles_drifted":        drifted,
		"rotations_overdue":    overdue,
		"roles_blocked":        blocked,
		"rotations_in_flight":  inFlight,
		"scheduler_running":    false,
		"management_api_pause": false,
	}
	if len(unreadable) > 0 {
		data["roles_unreadable"] = unreadable
	}
	if sch := b.Sched.Load(); sch != nil {
		data["scheduler_running"] = true
		data["queued"] = sch.Queue.Len()
	}
	if until := b.Limiter.PausedUntil(); until.After(now) {
		data["management_api_pause"] = true
		engine.AddTime(data, "management_api_paused_until", until)
	}
	if until := b.Tokens.Paused(); until.After(now) {
		engine.AddTime(data, "token_endpoint_paused_until", until)
	}
	engine.AddTime(data, "last_auth0_success", b.Limiter.LastSuccess())
	return &logical.Response{Data: data}, nil
}

// statusResponses documents a status read (OpenAPI, docs/API.md).
var statusResponses = map[int][]framework.Response{http.StatusOK: {{
	Description: "OK",
	Fields: map[string]*framework.FieldSchema{
		"roles":                       {Type: framework.TypeInt, Description: "How many roles the mount has."},
		"roles_drifted":               {Type: framework.TypeSlice, Description: "Roles whose credential the last drift check found Auth0 no longer holds: role, since, what differs, drift_action."},
		"roles_failing":               {Type: framework.TypeSlice, Description: "Roles whose last rotation attempt failed: role, since (first failure of the run), time and message of the last one, consecutive_failures, next_attempt."},
		"rotations_overdue":           {Type: framework.TypeSlice, Description: "Roles due more than a minute ago: role, due, overdue_seconds."},
		"roles_blocked":               {Type: framework.TypeSlice, Description: "Roles the engine will not rotate until an operator acts: role, reason."},
		"rotations_in_flight":         {Type: framework.TypeSlice, Description: "Rotations not finished: role, what, and version and since, or wal_id for a rotation whose outcome is being resolved."},
		"roles_unreadable":            {Type: framework.TypeStringSlice, Description: "Roles whose stored entry could not be read; absent when there is none."},
		"scheduler_running":           {Type: framework.TypeBool, Description: "Whether this node runs the scheduler (the active node of a primary cluster)."},
		"queued":                      {Type: framework.TypeInt, Description: "With the scheduler running: how many roles it has queued."},
		"management_api_pause":        {Type: framework.TypeBool, Description: "Whether the mount waits out a 429 from the Management API."},
		"management_api_paused_until": {Type: framework.TypeTime, Description: "During such a pause: when it ends."},
		"token_endpoint_paused_until": {Type: framework.TypeTime, Description: "While token/ waits out a 429 from Auth0's /oauth/token: when it ends."},
		"last_auth0_success":          {Type: framework.TypeTime, Description: "When Auth0 last answered this node's engine without error."},
	},
}}}

const pathStatusHelpSyn = `Summarize the mount for monitoring and alerting.`

const pathStatusHelpDesc = `
One read for a monitoring poll; it reads every role, so poll it every minute or so, not
per request. It answers:

  roles                        how many roles the mount has
  roles_failing                roles whose last rotation attempt failed: since (first
                               failure of the run), time and message of the last one,
                               consecutive_failures, next_attempt
  rotations_overdue            roles due more than a minute ago (their rotation has not
                               run: the scheduler is stopped or backed off)
  roles_blocked                roles the engine will not rotate until an operator acts
  roles_drifted                roles whose credential the last drift check found Auth0
                               no longer holds (drift_check_period on config): since,
                               what differs, drift_action
  rotations_in_flight          rotations left unresolved (write-ahead entries), staged
                               secrets switching, private_key_jwt keys not yet published
  scheduler_running, queued    whether this node runs the scheduler (the active node of a
                               primary cluster) and how many roles it has queued
  management_api_pause         true while the mount waits out an Auth0 429, with
                               management_api_paused_until; token_endpoint_paused_until
                               likewise for token/
  last_auth0_success           when Auth0 last answered this node's engine without error

Alert on a non-empty roles_failing (with since older than your tolerance),
rotations_overdue, roles_blocked or roles_drifted, and on a last_auth0_success much older
than the shortest rotation interval. The log lines worth alerting on are "rotation
failed", "scheduled rotation failed", "role not rotated", "could not read stored state"
and "credential drift".
`

// driftAction is a role's drift_action as reads show it.
func driftAction(role *model.RoleEntry) string {
	if role.DriftAction == "" {
		return model.DriftActionReport
	}
	return role.DriftAction
}
