package auth0

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/metrics"
)

func pathMetrics(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "auth0",
			OperationVerb:   "read",
			OperationSuffix: "metrics",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:    b.pathMetricsRead,
				Summary:     "Read the mount's metrics in Prometheus' text format, for a Prometheus scrape.",
				Description: pathMetricsHelpDesc,
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "The metrics, in Prometheus' text exposition format (" + metrics.ContentType + ").",
					MediaType:   "text/plain",
				}}},
			},
		},
		HelpSynopsis:    pathMetricsHelpSyn,
		HelpDescription: pathMetricsHelpDesc,
	}}
}

// pathMetricsRead answers the metrics as Prometheus scrapes them: the raw text body, not
// Vault's JSON.
func (b *backend) pathMetricsRead(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	text, err := b.Metrics.Text()
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: metrics.ContentType,
		logical.HTTPRawBody:     text,
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}

const pathMetricsHelpSyn = "The mount's metrics, in Prometheus' text format."

const pathMetricsHelpDesc = `
Answers this node's metrics of the mount in Prometheus' text exposition format
(text/plain; version=0.0.4), for Prometheus to scrape with a Vault token whose policy
reads only this path (docs/recipes/prometheus.md: the scrape config, the policy, what
to alert on):

  vault_auth0_rotations_total{kind,trigger,outcome}   jobs that acted: rotated, unchanged,
                                                      refused or failed
  vault_auth0_rotation_duration_seconds{kind}         how long rotations took
  vault_auth0_api_requests_total{endpoint,status}     requests to Auth0 by status class
  vault_auth0_api_request_duration_seconds{endpoint}  their latency
  vault_auth0_api_rate_limited_total                  429s from Auth0
  vault_auth0_api_paused_seconds_total                time calls waited after a 429
  vault_auth0_creds_reads_total                       reads of creds/
  vault_auth0_token_reads_total                       reads of token/, and the token cache's
  vault_auth0_token_cache_hits_total                  hits and misses, and the tokens asked
  vault_auth0_token_cache_misses_total                of Auth0
  vault_auth0_token_requests_total
  vault_auth0_roles, vault_auth0_queue_size           roles, and those queued, overdue,
  vault_auth0_roles_overdue, _roles_failing,          failing and blocked, as this node's
  vault_auth0_roles_blocked                           scheduler knows them (0 on a standby)
  vault_auth0_last_success_timestamp_seconds          the last Management API call Auth0
                                                      answered without an error

With metrics_role_labels=true on config, vault_auth0_role_rotations_total{role,outcome}
and vault_auth0_role_creds_reads_total{role} count per role as well. Each node answers
its own counts; they start at 0 when the plugin starts.
`
