package auth0api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
)

// mgmtError is a Management API error answer, as go-auth0 returns it.
type mgmtError struct{ status int }

func (e mgmtError) Error() string { return fmt.Sprintf("%d Auth0 says no", e.status) }
func (e mgmtError) Status() int   { return e.status }

func tokenError(status int, code string) error {
	return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status, Header: http.Header{}}, ErrorCode: code}
}

// Every classification, on every shape of error the engine meets, wrapped as callers wrap
// them.
func TestErrorClassification(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	cases := []struct {
		name                                          string
		err                                           error
		status                                        int
		rateLimited, refused, rejected, sentUnknown   bool
		forbidden, oauth, tokenFailure, transportFail bool
		audienceRefused, notFound                     bool
	}{
		{name: "management 429", err: mgmtError{429}, status: 429, rateLimited: true},
		{name: "management 500", err: mgmtError{500}, status: 500, sentUnknown: true},
		{name: "management 404", err: mgmtError{404}, status: 404, notFound: true},
		{name: "management 403", err: mgmtError{403}, status: 403},
		{name: "token 401", err: tokenError(401, "access_denied"), refused: true, rejected: true, oauth: true, tokenFailure: true, sentUnknown: true},
		{name: "token 400 invalid_client", err: tokenError(400, "invalid_client"), rejected: true, oauth: true, tokenFailure: true, sentUnknown: true},
		{name: "token 403", err: tokenError(403, "unauthorized_client"), forbidden: true, oauth: true, tokenFailure: true, sentUnknown: true},
		{name: "token 403 access_denied", err: tokenError(403, "access_denied"), forbidden: true, audienceRefused: true, oauth: true, tokenFailure: true, sentUnknown: true},
		{name: "token 302, not OAuth", err: tokenError(302, ""), tokenFailure: true, sentUnknown: true},
		{name: "dial failure", err: dial, transportFail: true},
		{name: "reset after sending", err: read, transportFail: true, sentUnknown: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("calling Auth0: %w", tc.err)
			forbidden, _ := TokenForbidden(err)
			got := []bool{RateLimited(err), TokenRefused(err), CredentialsRejected(err), OutcomeUnknown(err, true), forbidden, IsOAuthAnswer(err), IsTokenFailure(err), IsTransportFailure(err), AudienceRefused(err), ClientNotFound(err)}
			want := []bool{tc.rateLimited, tc.refused, tc.rejected, tc.sentUnknown, tc.forbidden, tc.oauth, tc.tokenFailure, tc.transportFail, tc.audienceRefused, tc.notFound}
			names := []string{"RateLimited", "TokenRefused", "CredentialsRejected", "OutcomeUnknown", "TokenForbidden", "IsOAuthAnswer", "IsTokenFailure", "IsTransportFailure", "AudienceRefused", "ClientNotFound"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %v, want %v", names[i], got[i], want[i])
				}
			}
			if s := ManagementStatus(err); s != tc.status {
				t.Errorf("ManagementStatus = %d, want %d", s, tc.status)
			}
			if OutcomeUnknown(err, false) {
				t.Error("OutcomeUnknown of a request never sent")
			}
		})
	}
}
