package auth0api

import (
	"errors"
	"net"
	"net/http"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"
)

// Every classification of an Auth0 error is here. Auth0 answers in two shapes: the
// Management API's JSON errors (go-auth0's management.Error), and the token endpoint's
// OAuth errors (oauth2.RetrieveError, also what the engine's own token clients return).

// ManagementStatus is the HTTP status of a Management API error answer; 0 when err is no
// answer of the Management API (a transport failure, a token refusal, nil).
func ManagementStatus(err error) int {
	status, _ := ManagementError(err)
	return status
}

// ManagementError is the HTTP status and Auth0's own message of a Management API error
// answer; 0 and "" when err is none.
func ManagementError(err error) (status int, message string) {
	var mErr management.Error
	if errors.As(err, &mErr) {
		return mErr.Status(), mErr.Error()
	}
	return 0, ""
}

// TokenAnswer is the token endpoint's answer to a failed token request: its HTTP status,
// and the OAuth error code and description it gave ("" if none). ok is false when err is
// no answer of the token endpoint.
func TokenAnswer(err error) (status int, code, desc string, header http.Header, ok bool) {
	var tokenErr *oauth2.RetrieveError
	if !errors.As(err, &tokenErr) || tokenErr.Response == nil {
		return 0, "", "", nil, false
	}
	return tokenErr.Response.StatusCode, tokenErr.ErrorCode, tokenErr.ErrorDescription, tokenErr.Response.Header, true
}

// IsOAuthAnswer reports whether err is a token endpoint answer in OAuth's shape (with an
// error code): what Auth0 answers, unlike whatever else may listen at an address.
func IsOAuthAnswer(err error) bool {
	_, code, _, _, ok := TokenAnswer(err)
	return ok && code != ""
}

// IsTokenFailure reports whether err came from a token request, whatever answered.
func IsTokenFailure(err error) bool {
	var tokenErr *oauth2.RetrieveError
	return errors.As(err, &tokenErr)
}

// RateLimited reports whether err is the Management API's 429, which says nothing was
// applied.
func RateLimited(err error) bool { return ManagementStatus(err) == http.StatusTooManyRequests }

// TokenRefused reports whether the token endpoint refused the credentials with a 401.
func TokenRefused(err error) bool {
	status, _, _, _, ok := TokenAnswer(err)
	return ok && status == http.StatusUnauthorized
}

// TokenForbidden reports whether the token endpoint answered 403: the credentials are
// good, the application lacks a grant (or, with unauthorized_client, may not use this
// grant type).
func TokenForbidden(err error) (forbidden bool, code string) {
	status, code, _, _, ok := TokenAnswer(err)
	return ok && status == http.StatusForbidden, code
}

// AudienceRefused reports whether the token endpoint refused the audience asked for (403
// access_denied): Auth0 knows no API by that identifier ("Service not enabled within
// domain", as for a custom domain's name in place of the canonical one), or the
// application is not authorized for it.
func AudienceRefused(err error) bool {
	forbidden, code := TokenForbidden(err)
	return forbidden && code == "access_denied"
}

// ClientNotFound reports whether the Management API answered 404: no application has the
// client_id asked about.
func ClientNotFound(err error) bool { return ManagementStatus(err) == http.StatusNotFound }

// CredentialsRejected tells Auth0 refusing the credentials (401, or 400 invalid_client)
// from everything else: not reaching Auth0, its limits (429, or a 500 "Global limit has
// been reached"), or a missing grant (403), none of which says the secret is wrong.
func CredentialsRejected(err error) bool {
	status, code, _, _, ok := TokenAnswer(err)
	return ok && (status == http.StatusUnauthorized || status == http.StatusBadRequest && code == "invalid_client")
}

// OutcomeUnknown tells a failed request that Auth0 may have applied from one it cannot
// have: never sent, refused before connecting, or answered with a 4xx (429 included).
func OutcomeUnknown(err error, sent bool) bool {
	if !sent {
		return false
	}
	var mErr management.Error
	if errors.As(err, &mErr) {
		return mErr.Status() >= 500
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	return true
}

// IsTransportFailure reports whether err is a failure with no HTTP answer (network, DNS,
// TLS, timeout).
func IsTransportFailure(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr)
}
