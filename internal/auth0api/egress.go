// Package auth0api is the Auth0 side of the engine: the rules every outbound request
// follows (egress.go), the Management API client (management.go, credentials.go), the
// token endpoint client (token.go), the pace of the Management API calls (ratelimit.go),
// keys and client assertions for private_key_jwt (assertion.go), and every
// classification of Auth0's errors (errors.go).
package auth0api

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Egress rules. Every request the engine makes carries a credential: the Management API
// secret or bearer token, a role's secret, or a client assertion. So every request goes to
// the configured domain and nowhere else:
//
//   - no redirect is followed, by any client, to any host (go-auth0 rebuilds the HTTP
//     client it is given and follows redirects with the bearer token re-added on each hop;
//     a token client would re-send its POST body on a 307 or 308);
//   - a request for any other host than the configured one is refused before it leaves;
//   - no connection is made to an unspecified, link-local (cloud metadata), multicast or
//     broadcast address, whether the domain names it or resolves to it.
//
// All of it is enforced in the transport that every client of the engine is built on.

var (
	ErrRedirect     = errors.New("Auth0 answered with a redirect, which Vault does not follow: check that domain is the tenant's own domain (or its custom domain), not an address that forwards")
	ErrOtherHost    = errors.New("refusing a request to a host other than the configured domain")
	errUnreachable  = errors.New("could not reach Auth0 or got no answer within request_timeout (network, DNS, TLS or timeout; Vault's server log has the details)")
	ErrForbiddenDst = errors.New("refusing to connect to an unspecified, link-local, multicast or broadcast address: the domain must be a public Auth0 tenant domain (or loopback for a local emulator)")
)

// ForbiddenIP reports whether the engine must never connect to ip.
func ForbiddenIP(ip net.IP) bool {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	switch {
	case ip.IsUnspecified(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), ip.Equal(net.IPv4bcast):
		return true
	}
	// Cloud metadata services outside 169.254.0.0/16: AWS's IPv6 endpoint and Alibaba's.
	return ip.Equal(net.ParseIP("fd00:ec2::254")) || ip.Equal(net.ParseIP("100.100.100.200"))
}

// EgressDialer connects only to addresses ForbiddenIP allows, checked on the address
// actually dialed, after name resolution.
var EgressDialer = &net.Dialer{
	Timeout:   30 * time.Second,
	KeepAlive: 30 * time.Second,
	Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || ForbiddenIP(ip) {
			return ErrForbiddenDst
		}
		return nil
	},
}

// NewEgressTransport is a fresh transport (its own connection pool) that dials through
// EgressDialer and sends only to host.
func NewEgressTransport(host string) (*http.Transport, http.RoundTripper) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = EgressDialer.DialContext
	return base, &hostOnlyTransport{base: base, host: strings.ToLower(host)}
}

// hostOnlyTransport refuses redirects and requests to any other host than host.
type hostOnlyTransport struct {
	base http.RoundTripper
	host string
}

func (t *hostOnlyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var refused error
	switch {
	case req.Response != nil: // http.Client sets it on the request that follows a redirect
		refused = ErrRedirect
	case !strings.EqualFold(req.URL.Host, t.host):
		refused = ErrOtherHost
	}
	if refused != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body on every path
		}
		return nil, refused
	}
	return t.base.RoundTrip(req)
}

// NewEgressClient is an HTTP client for requests to host, with timeout, under
// the egress rules; close releases its connections. A redirect is answered to the caller
// as the response it is (a 3xx, which oauth2 reports as a failed token request), never
// followed.
func NewEgressClient(host string, timeout time.Duration) (client *http.Client, close func()) {
	base, rt := NewEgressTransport(host)
	return &http.Client{
		Timeout:       timeout,
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, base.CloseIdleConnections
}

// DescribeTransportError says that Auth0 could not be reached, without the details of the
// network error (addresses, ports, TLS or DNS specifics, or whether it timed out): whoever
// may write config must not learn from the answer what listens where. Callers log the
// details for the operator.
func DescribeTransportError(err error) string {
	if status, _, _, _, ok := TokenAnswer(err); ok && status/100 == 3 {
		return ErrRedirect.Error() // a token client's redirect, answered to it as it is
	}
	if errors.Is(err, ErrRedirect) || errors.Is(err, ErrForbiddenDst) || errors.Is(err, ErrOtherHost) {
		return err.Error()
	}
	return errUnreachable.Error()
}
