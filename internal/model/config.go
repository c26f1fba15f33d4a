package model

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/strutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

const (
	ConfigStoragePath = "config"
	// tenantStoragePath keeps the domain the mount's roles are bound under; it outlives a
	// config delete (path_config.go, the tenant rule).
	tenantStoragePath     = "tenant"
	DefaultRequestTimeout = 30 * time.Second

	// DefaultTokenRefreshFraction is how far into a cached access token's life token/
	// asks Auth0 for a new one.
	DefaultTokenRefreshFraction = 0.67
	// DefaultPropagationWait is how long after attaching a key it is served: Auth0
	// documents up to 30 seconds for a credential change to apply everywhere.
	DefaultPropagationWait = 30 * time.Second
	// DefaultCredsCacheSize is how many roles' creds the read path keeps decoded.
	DefaultCredsCacheSize = 10000
	// DefaultRootOverlapPeriod is how long the mount's previous key stays attached.
	DefaultRootOverlapPeriod = 24 * time.Hour
	// DefaultDriftCheckPeriod is how often each role's credential is checked against Auth0.
	DefaultDriftCheckPeriod = 24 * time.Hour
)

// ConfigEntry is the Management API connection, stored seal-wrapped at "config".
type ConfigEntry struct {
	// Scheme is "https", or "http" for a loopback host (a local emulator).
	Scheme         string        `json:"scheme"`
	Host           string        `json:"host"`
	ClientID       string        `json:"client_id"`
	ClientSecret   string        `json:"client_secret"`
	Audience       string        `json:"audience,omitempty"`
	RequestTimeout time.Duration `json:"request_timeout,omitempty"`
	// RateLimit is the most Management API requests per second the mount makes.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// TokenRefreshFraction is the part of an access token's lifetime after which token/
	// asks Auth0 for a new one (tokens.go); 0 means defaultTokenRefreshFraction.
	TokenRefreshFraction float64 `json:"token_refresh_fraction,omitempty"`
	// PropagationWait is how long Auth0 may take to apply a credential change everywhere;
	// nil means defaultPropagationWait. A new private_key_jwt key is served only this long
	// after it is attached (keys.go).
	PropagationWait *time.Duration `json:"propagation_wait,omitempty"`
	// CredsCacheSize bounds the creds read cache (creds_cache.go); nil means the default,
	// 0 disables it.
	CredsCacheSize *int `json:"creds_cache_size,omitempty"`
	// MetricsRoleLabels allows role names as labels of auth0/metrics' per-role series.
	MetricsRoleLabels bool `json:"metrics_role_labels,omitempty"`
	// DriftCheckPeriod is how often each role's credential is checked against Auth0 (nil:
	// DefaultDriftCheckPeriod; 0: never).
	DriftCheckPeriod *time.Duration `json:"drift_check_period,omitempty"`

	// AllowedClientIDs limits the applications roles of this mount may bind and rotate:
	// exact client IDs, and globs in which "*" matches any run of characters. Empty: any.
	AllowedClientIDs []string `json:"allowed_client_ids,omitempty"`

	// PendingClientSecret is a root secret being rotated to (root_rotation.go): stored
	// before Auth0 is told, made current once Auth0 accepts it.
	PendingClientSecret string        `json:"pending_client_secret,omitempty"`
	LastRootRotation    time.Time     `json:"last_root_rotation,omitempty"`
	RootRotationPeriod  time.Duration `json:"root_rotation_period,omitempty"`
	NextRootRotation    time.Time     `json:"next_root_rotation,omitempty"`
	// RootFailures records failed root rotations and when the next attempt is due.
	RootFailures FailureState `json:"root_failures,omitempty"`

	// CredentialType is how the mount authenticates to the Management API: "" (its
	// client secret) or private_key_jwt, with PrivateKey, whose state (versions, the
	// pending key, the overlap) RootKey keeps like a key role's (rootkey.go).
	CredentialType    string         `json:"credential_type,omitempty"`
	PrivateKey        string         `json:"private_key,omitempty"`
	RootKey           *RoleEntry     `json:"root_key,omitempty"`
	RootOverlapPeriod *time.Duration `json:"root_overlap_period,omitempty"`
}

// WithSecret is a copy of the config that authenticates with secret.
func (c *ConfigEntry) WithSecret(secret string) *ConfigEntry {
	cp := *c
	cp.ClientSecret = secret
	cp.CredentialType, cp.PrivateKey, cp.RootKey = "", "", nil
	return &cp
}

func StoreConfig(ctx context.Context, s logical.Storage, cfg *ConfigEntry) error {
	entry, err := logical.StorageEntryJSON(ConfigStoragePath, cfg)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing config: %w", err)
	}
	return nil
}

// ClientAllowed reports whether roles of this mount may bind and rotate clientID.
func (c *ConfigEntry) ClientAllowed(clientID string) bool {
	if len(c.AllowedClientIDs) == 0 {
		return true
	}
	return strutil.StrListContainsGlob(c.AllowedClientIDs, clientID)
}

// NotAllowedClient says why a role's application is refused by allowed_client_ids.
func NotAllowedClient(clientID string) string {
	return fmt.Sprintf("client_id %q is not in this mount's allowed_client_ids; an operator who may write <mount>/config can add it (or bind the role on the mount meant for it)", clientID)
}

// ValidateAllowedClientIDs checks allowed_client_ids entries: client IDs, where "*"
// matches any run of characters.
func ValidateAllowedClientIDs(ids []string) error {
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, " \t\r\n/") {
			return fmt.Errorf("%q is not a client ID or a glob of client IDs (e.g. \"abc123\", \"team-a-*\" or \"*\")", id)
		}
	}
	return nil
}

// TenantEntry is the domain the mount's roles are bound under.
type TenantEntry struct {
	Scheme string `json:"scheme"`
	Host   string `json:"host"`
}

// TenantMove says from which domain cfg would move a mount that has roles ("" if it moves
// none: same domain, no roles, or no domain known yet). The domain is the tenant entry's,
// or for a mount configured before there was one, prev's (the config being replaced).
func TenantMove(ctx context.Context, s logical.Storage, prev TenantEntry, cfg *ConfigEntry) (string, error) {
	entry, err := s.Get(ctx, tenantStoragePath)
	if err != nil {
		return "", err
	}
	t := prev
	if entry != nil {
		if err := entry.DecodeJSON(&t); err != nil {
			return "", fmt.Errorf("decoding %s: %w", tenantStoragePath, err)
		}
	}
	if t.Host == "" || t.Scheme == cfg.Scheme && strings.EqualFold(t.Host, cfg.Host) {
		return "", nil
	}
	roles, err := s.List(ctx, RoleStoragePrefix)
	if err != nil || len(roles) == 0 {
		return "", err
	}
	return (&ConfigEntry{Scheme: t.Scheme, Host: t.Host}).Domain(), nil
}

func StoreTenant(ctx context.Context, s logical.Storage, cfg *ConfigEntry) error {
	entry, err := logical.StorageEntryJSON(tenantStoragePath, TenantEntry{Scheme: cfg.Scheme, Host: cfg.Host})
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// AudienceOrDefault is the configured audience or Auth0's default for the domain.
func (c *ConfigEntry) AudienceOrDefault() string {
	if c.Audience != "" {
		return c.Audience
	}
	return "https://" + c.Host + "/api/v2/"
}

// managementAPIPath is the path of the Management API's identifier (its audience).
const managementAPIPath = "/api/v2/"

// CanonicalDomain reports whether the domain is one of Auth0's own tenant domains
// (<tenant>.auth0.com, <tenant>.<region>.auth0.com) rather than a custom domain.
func (c *ConfigEntry) CanonicalDomain() bool {
	return strings.HasSuffix(hostOnly(c.Host), ".auth0.com")
}

// hostOnly is host without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// AudienceProblem says what is wrong with the Management API audience whatever Auth0
// answers, "" when nothing is: the Management API's identifier is
// https://<canonical tenant domain>/api/v2/, trailing slash included.
func (c *ConfigEntry) AudienceProblem() string {
	audience := c.AudienceOrDefault()
	if u, err := url.Parse(audience); err != nil || u.Path != managementAPIPath {
		return fmt.Sprintf("audience %q is not a Management API identifier, which ends in %s (trailing slash included); set audience to the Identifier shown at Applications > APIs > Auth0 Management API (vault write <mount>/config audience=https://<tenant>.<region>.auth0.com/api/v2/), or audience=\"\" for the default", audience, managementAPIPath)
	}
	return ""
}

// CustomDomainProblem says, from the names alone, that a custom domain goes with the
// default audience, which names the custom domain where Auth0's Management API identifier
// names the canonical tenant domain; "" otherwise. A loopback domain (a local emulator) is
// a tenant of its own.
func (c *ConfigEntry) CustomDomainProblem() string {
	host := hostOnly(c.Host)
	if c.Audience != "" || c.CanonicalDomain() || c.Scheme == "http" || isLoopback(host, net.ParseIP(host)) {
		return ""
	}
	return fmt.Sprintf("domain %q is not an Auth0 tenant domain (<tenant>.<region>.auth0.com): if it is the tenant's custom domain, the Management API's identifier still names the canonical domain, and the default audience (%s) names the custom one; set audience to the Identifier shown at Applications > APIs > Auth0 Management API (vault write <mount>/config audience=https://<tenant>.<region>.auth0.com/api/v2/)", c.Host, c.AudienceOrDefault())
}

// AssertionAudience is the aud of client assertions: Auth0 takes "https://<domain>/".
func (c *ConfigEntry) AssertionAudience() string {
	return "https://" + c.Host + "/"
}

// Domain is the domain as users give it: the bare host, with the scheme only for http.
func (c *ConfigEntry) Domain() string {
	if c.Scheme == "http" {
		return "http://" + c.Host
	}
	return c.Host
}

func (c *ConfigEntry) RateLimitOrDefault() float64 {
	if c.RateLimit > 0 {
		return c.RateLimit
	}
	return auth0api.DefaultRateLimit
}

func (c *ConfigEntry) PropagationWaitOrDefault() time.Duration {
	if c.PropagationWait != nil {
		return *c.PropagationWait
	}
	return DefaultPropagationWait
}

func (c *ConfigEntry) CredsCacheSizeOrDefault() int {
	if c.CredsCacheSize != nil {
		return *c.CredsCacheSize
	}
	return DefaultCredsCacheSize
}

func (c *ConfigEntry) TokenRefreshFractionOrDefault() float64 {
	if c.TokenRefreshFraction > 0 {
		return c.TokenRefreshFraction
	}
	return DefaultTokenRefreshFraction
}

// TokenURL is the tenant's token endpoint.
func (c *ConfigEntry) TokenURL() string {
	return c.Scheme + "://" + c.Host + "/oauth/token"
}

func (c *ConfigEntry) RequestTimeoutOrDefault() time.Duration {
	if c.RequestTimeout > 0 {
		return c.RequestTimeout
	}
	return DefaultRequestTimeout
}

func LoadConfig(ctx context.Context, s logical.Storage) (*ConfigEntry, error) {
	entry, err := s.Get(ctx, ConfigStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	cfg := new(ConfigEntry)
	if err := entry.DecodeJSON(cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return cfg, nil
}

// dnsName is a host name as DNS allows it: dot-separated labels of letters, digits and
// inner hyphens.
var dnsName = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ParseDomain validates a domain as API.md defines it and returns the scheme and the host
// (with port, if any). A leading "https://" is stripped; "http://" is allowed only for
// loopback hosts; paths, queries, fragments, user info and other schemes are rejected.
func ParseDomain(raw string) (scheme, host string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "", errors.New(`domain must not be empty; give the tenant domain, e.g. "acme.eu.auth0.com"`)
	}
	scheme = "https"
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = strings.ToLower(raw[:i]), raw[i+3:]
		if scheme != "https" && scheme != "http" {
			return "", "", fmt.Errorf("scheme %q is not supported; give the bare host, e.g. \"acme.eu.auth0.com\"", scheme)
		}
	}
	if strings.ContainsAny(rest, "/?#@\\ ") {
		return "", "", errors.New(`only a host (and optional port) is accepted, without path, query, fragment or user info, e.g. "acme.eu.auth0.com"`)
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil || u.Host == "" {
		return "", "", errors.New(`not a valid host; give e.g. "acme.eu.auth0.com"`)
	}
	hostname, port := u.Hostname(), u.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", "", errors.New("empty port")
	}
	ip := net.ParseIP(hostname)
	if ip == nil && !dnsName.MatchString(hostname) {
		return "", "", fmt.Errorf("%q is not a valid host name", hostname)
	}
	if ip != nil && auth0api.ForbiddenIP(ip) {
		return "", "", errors.New("unspecified, link-local (e.g. cloud metadata at 169.254.169.254), multicast and broadcast addresses are refused; give the tenant domain, e.g. \"acme.eu.auth0.com\"")
	}
	if scheme == "http" && !isLoopback(hostname, ip) {
		return "", "", errors.New(`"http://" is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost); use https`)
	}
	return scheme, strings.ToLower(u.Host), nil
}

func isLoopback(hostname string, ip net.IP) bool {
	if ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(hostname, "localhost")
}

func ValidateAudience(audience string) error {
	if audience == "" {
		return nil
	}
	u, err := url.Parse(audience)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New(`give the Management API identifier as a URL, e.g. "https://acme.eu.auth0.com/api/v2/"`)
	}
	return nil
}

// UsesKey reports whether the mount authenticates to the Management API with a key.
func (c *ConfigEntry) UsesKey() bool { return c.CredentialType == CredentialPrivateKeyJWT }

// HasKey reports whether it has one in use already: before its first key is committed, a
// mount switching to private_key_jwt still authenticates with its client secret.
func (c *ConfigEntry) HasKey() bool {
	return c.UsesKey() && c.PrivateKey != "" && c.RootKey != nil && c.RootKey.Current() != nil
}

func (c *ConfigEntry) RootOverlapPeriodOrDefault() time.Duration {
	if c.RootOverlapPeriod != nil {
		return *c.RootOverlapPeriod
	}
	return DefaultRootOverlapPeriod
}

// RootKeyState is the config's key state, with the config's settings in it.
func (c *ConfigEntry) RootKeyState() *RoleEntry {
	r := c.RootKey
	if r == nil {
		r = &RoleEntry{Layout: RoleLayout, MaxVersions: 2, CredentialType: CredentialPrivateKeyJWT}
	} else {
		r = r.Clone()
	}
	r.ClientID = c.ClientID
	r.AllowAuthMethodChange = true // writing credential_type=private_key_jwt is the consent
	r.OverlapPeriod = c.RootOverlapPeriodOrDefault()
	r.RotationPeriod, r.NextVaultRotation = c.RootRotationPeriod, c.NextRootRotation
	return r
}

// DriftCheckPeriodOrDefault is drift_check_period: 0 turns drift checks off.
func (c *ConfigEntry) DriftCheckPeriodOrDefault() time.Duration {
	if c.DriftCheckPeriod != nil {
		return *c.DriftCheckPeriod
	}
	return DefaultDriftCheckPeriod
}
