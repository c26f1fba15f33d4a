package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file implements the /api/v2 Management API endpoints.

// Management API scopes used by the client endpoints.
const (
	scopeReadClients      = "read:clients"
	scopeReadClientKeys   = "read:client_keys"
	scopeReadClientCreds  = "read:client_credentials"
	scopeUpdateClients    = "update:clients"
	scopeUpdateClientKeys = "update:client_keys"
	scopeUpdateClientCred = "update:client_credentials"
)

// route identifies a Management API endpoint.
type routeKind int

const (
	routeNone         routeKind = iota
	routeClient                 // /api/v2/clients/{id}
	routeRotateSecret           // /api/v2/clients/{id}/rotate-secret
	routeCredentials            // /api/v2/clients/{id}/credentials
	routeCredential             // /api/v2/clients/{id}/credentials/{credential_id}
)

// matchRoute maps a request path to an endpoint, its client ID and, for
// routeCredential, its credential ID. Path segments are unescaped one by one
// so that IDs containing an escaped "/" survive.
func matchRoute(u *url.URL) (kind routeKind, clientID, credID string) {
	rest, ok := strings.CutPrefix(u.EscapedPath(), "/api/v2/")
	if !ok {
		return routeNone, "", ""
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || len(segs) > 4 || segs[0] != "clients" || segs[1] == "" {
		return routeNone, "", ""
	}
	id, err := url.PathUnescape(segs[1])
	if err != nil {
		return routeNone, "", ""
	}
	switch {
	case len(segs) == 2:
		return routeClient, id, ""
	case len(segs) == 3 && segs[2] == "rotate-secret":
		return routeRotateSecret, id, ""
	case len(segs) == 3 && segs[2] == "credentials":
		return routeCredentials, id, ""
	case len(segs) == 4 && segs[2] == "credentials" && segs[3] != "":
		cred, err := url.PathUnescape(segs[3])
		if err != nil {
			return routeNone, "", ""
		}
		return routeCredential, id, cred
	}
	return routeNone, "", ""
}

// allowedMethods lists the methods each endpoint accepts.
var allowedMethods = map[routeKind][]string{
	routeClient:       {http.MethodGet, http.MethodPatch},
	routeRotateSecret: {http.MethodPost},
	routeCredentials:  {http.MethodGet, http.MethodPost},
	routeCredential:   {http.MethodGet, http.MethodPatch, http.MethodDelete},
}

// serveManagement handles every /api/v2 request: counting, BeforeApply
// faults, the rate limiter, routing, authentication, then the endpoint.
func (s *Server) serveManagement(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.mu.Unlock()

	kind, clientID, credID := matchRoute(r.URL)
	if s.runFault(BeforeApply, w, r, clientID, endpointManagement) {
		return
	}
	if !s.rateLimit(w) {
		return
	}
	if kind == routeNone {
		writeAPIError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	methods := allowedMethods[kind]
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeAPIError(w, http.StatusMethodNotAllowed, "", "")
		return
	}
	claims := s.authenticate(w, r)
	if claims == nil {
		return
	}
	scopes := strings.Fields(claims.Scope)

	switch {
	case kind == routeClient && r.Method == http.MethodGet:
		s.getClient(w, r, scopes, clientID)
	case kind == routeClient && r.Method == http.MethodPatch:
		s.patchClient(w, r, scopes, clientID)
	case kind == routeRotateSecret:
		s.rotateSecret(w, r, scopes, clientID)
	case kind == routeCredentials && r.Method == http.MethodGet:
		s.listCredentials(w, scopes, clientID)
	case kind == routeCredentials && r.Method == http.MethodPost:
		s.createCredential(w, r, scopes, clientID)
	case kind == routeCredential && r.Method == http.MethodGet:
		s.getCredential(w, scopes, clientID, credID)
	case kind == routeCredential && r.Method == http.MethodPatch:
		s.patchCredential(w, r, scopes, clientID, credID)
	case kind == routeCredential && r.Method == http.MethodDelete:
		s.deleteCredential(w, r, scopes, clientID, credID)
	}
}

// authenticate checks the bearer token. It writes Auth0's 401 and returns
// nil if the token is missing, invalid, for another audience or expired.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *tokenClaims {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeAPIError(w, http.StatusUnauthorized, "Missing authentication", "")
		return nil
	}
	claims, state := s.verifyToken(token, r.Host)
	switch state {
	case tokenValid:
		return claims
	case tokenExpired:
		writeUnauthorized(w, "Expired token received for JSON Web Token validation")
	default:
		writeUnauthorized(w, "Invalid token")
	}
	return nil
}

// writeUnauthorized writes a 401 the way Auth0 (hapi's Boom.unauthorized with
// the Bearer scheme) does: the message is repeated in "attributes" and in the
// WWW-Authenticate header.
func writeUnauthorized(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+message+`"`)
	writeJSON(w, http.StatusUnauthorized, apiError{
		StatusCode: http.StatusUnauthorized,
		Error:      http.StatusText(http.StatusUnauthorized),
		Message:    message,
		Attributes: map[string]string{"error": message},
	})
}

// requireScope writes a 403 insufficient_scope and returns false unless the
// token has at least one of the wanted scopes.
func requireScope(w http.ResponseWriter, have []string, anyOf ...string) bool {
	if hasAnyScope(have, anyOf...) {
		return true
	}
	writeAPIError(w, http.StatusForbidden,
		"Insufficient scope, expected any of: "+strings.Join(anyOf, ","), "insufficient_scope")
	return false
}

func hasAnyScope(have []string, anyOf ...string) bool {
	for _, h := range have {
		for _, want := range anyOf {
			if h == want {
				return true
			}
		}
	}
	return false
}

func writeNoClient(w http.ResponseWriter) {
	writeAPIError(w, http.StatusNotFound, "The client does not exist", "inexistent_client")
}

// renderLocked returns the JSON object of a client. s.mu must be held.
func (s *Server) renderLocked(rec *clientRecord, withSecret bool) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(rec.attrs)+4)
	for k, v := range rec.attrs {
		out[k] = v
	}
	out["client_id"] = mustJSON(rec.id)
	out["name"] = mustJSON(rec.name)
	out["tenant"] = mustJSON(s.tenant)
	// Auth0 always reports jwt_configuration.secret_encoded, also after a
	// PATCH that set jwt_configuration without it (go-auth0's recorded
	// TestClient_Update).
	var jwtConf map[string]json.RawMessage
	if json.Unmarshal(out["jwt_configuration"], &jwtConf) == nil && jwtConf != nil && jwtConf["secret_encoded"] == nil {
		jwtConf["secret_encoded"] = json.RawMessage(`false`)
		out["jwt_configuration"] = mustJSON(jwtConf)
	}
	if rec.auth.method != "" {
		// On private_key_jwt or self_signed_tls_client_auth: the
		// credentials by id, no token_endpoint_auth_method, and the secret
		// hidden ("The client_secret parameter will be hidden once the
		// Private Key JWT configuration is complete", Auth0 guide
		// "Configure Private Key JWT Authentication"; for mTLS, "a Client
		// Secret will no longer be accepted", "Configure mTLS for a
		// client", so the harsher reading hides it too).
		out["client_authentication_methods"] = renderAuthMethods(rec.auth)
		out["token_endpoint_auth_method"] = json.RawMessage(`null`)
		withSecret = false
	}
	if withSecret {
		out["client_secret"] = mustJSON(rec.secret)
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// getClient implements GET /api/v2/clients/{id}. The fields / include_fields
// query parameters select (include_fields=true, the default) or exclude
// (include_fields=false) properties; without fields every property is
// returned. Like Auth0, a request whose result would contain client_secret
// (no fields; fields listing it; include_fields=false with fields not listing
// it) is refused with 403 insufficient_scope unless the token has
// read:client_keys or read:client_credentials; the secret is never silently
// left out.
func (s *Server) getClient(w http.ResponseWriter, r *http.Request, scopes []string, id string) {
	if !requireScope(w, scopes, scopeReadClients, scopeReadClientKeys) {
		return
	}
	q := r.URL.Query()
	include := true
	switch v := q.Get("include_fields"); v {
	case "", "true":
	case "false":
		include = false
	default:
		writeAPIError(w, http.StatusBadRequest,
			"Query validation error: 'Invalid type: string (expected boolean)' on property include_fields (true if the fields specified are to be included in the result, false otherwise (defaults to true)).",
			"invalid_query_string")
		return
	}
	var fields []string
	for _, f := range strings.Split(q.Get("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}

	listed := make(map[string]bool, len(fields))
	for _, f := range fields {
		listed[f] = true
	}
	wantsSecret := len(fields) == 0 || listed["client_secret"] == include
	canReadSecret := hasAnyScope(scopes, scopeReadClientKeys, scopeReadClientCreds)
	if wantsSecret && !canReadSecret {
		writeAPIError(w, http.StatusForbidden, "You cannot read the following fields: client_secret", "insufficient_scope")
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[id]
	var obj map[string]json.RawMessage
	if ok {
		obj = s.renderLocked(rec, canReadSecret)
	}
	s.mu.Unlock()
	if !ok {
		writeNoClient(w)
		return
	}

	if len(fields) > 0 {
		for k := range obj {
			if listed[k] != include {
				delete(obj, k)
			}
		}
	}
	writeJSON(w, http.StatusOK, obj)
}

// rotateSecret implements POST /api/v2/clients/{id}/rotate-secret. The
// endpoint takes no payload; an empty body, "null" or any valid JSON is
// accepted and ignored. With Options.PropagationDelay the replaced secret
// keeps working, at random, for that long (see propagation.go); so does one
// replaced by PATCH.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request, scopes []string, id string) {
	if !requireScope(w, scopes, scopeUpdateClientKeys) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload", "")
		return
	}
	if isJSONRequest(r) && len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload JSON format", "")
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[id]
	method := ""
	if ok {
		method = rec.auth.method
	}
	var obj map[string]json.RawMessage
	if ok && method == "" {
		s.replaceSecretLocked(rec, randomSecret())
		s.stats.Rotations[id]++
		obj = s.renderLocked(rec, true)
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
		return
	case method == MethodPrivateKeyJWT:
		// "This endpoint cannot be used with clients configured with
		// Private Key JWT authentication method" (Management API
		// reference, "Rotate a client secret").
		writeAPIError(w, http.StatusBadRequest,
			"This endpoint cannot be used with clients configured with Private Key JWT authentication method", "operation_not_supported")
		return
	case method != "":
		// The same for self-signed mTLS, whose clients have no usable
		// secret either: the harsher reading.
		writeAPIError(w, http.StatusBadRequest,
			"This endpoint cannot be used with clients configured with Self-Signed TLS Client Authentication (self_signed_tls_client_auth) method", "operation_not_supported")
		return
	}
	if s.runFault(AfterApply, w, r, id, endpointManagement) {
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func isJSONRequest(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// updatableProperties are the properties PATCH /api/v2/clients/{id} accepts
// (Auth0's ClientUpdate schema); anything else is rejected as Auth0 does
// ("Additional properties not allowed").
var updatableProperties = setOf(
	"name", "description", "client_secret", "logo_uri", "callbacks",
	"oidc_logout", "oidc_backchannel_logout", "session_transfer",
	"allowed_origins", "web_origins", "grant_types", "client_aliases",
	"allowed_clients", "allowed_logout_urls", "jwt_configuration",
	"encryption_key", "sso", "cross_origin_authentication", "cross_origin_loc",
	"sso_disabled", "custom_login_page_on", "token_endpoint_auth_method",
	"is_token_endpoint_ip_header_trusted", "app_type", "is_first_party",
	"oidc_conformant", "custom_login_page", "custom_login_page_preview",
	"token_quota", "form_template", "addons", "client_metadata", "mobile",
	"initiate_login_uri", "native_social_login", "refresh_token",
	"default_organization", "organization_usage",
	"organization_require_behavior", "organization_discovery_methods",
	"client_authentication_methods", "require_pushed_authorization_requests",
	"require_proof_of_possession", "signed_request_object", "compliance_level",
	"par_request_expiry",
	"skip_non_verifiable_callback_uri_confirmation_prompt", "token_exchange",
	"express_configuration", "async_approval_notification_channels",
)

// propertyDescriptions are the schema descriptions Auth0 appends to payload
// validation messages.
var propertyDescriptions = map[string]string{
	"name":                          "The name of the client. Must contain at least one character. Does not allow '<' or '>'.",
	"description":                   "Free text description of the purpose of the Client. (Max character length: <code>140</code>)",
	"client_secret":                 "The secret used to sign tokens for the client",
	"token_endpoint_auth_method":    "Defines the requested authentication method for the token endpoint. Possible values are 'none' (public client without a client secret), 'client_secret_post' (client uses HTTP POST parameters) or 'client_secret_basic' (client uses HTTP Basic)",
	"client_authentication_methods": "Defines client authentication methods.",
}

// payloadError writes Auth0's 400 for a request body that fails schema
// validation.
func payloadError(w http.ResponseWriter, problem, property string) {
	msg := "Payload validation error: '" + problem + "'"
	if property != "" {
		msg += " on property " + property + " (" + propertyDescriptions[property] + ")"
	}
	writeAPIError(w, http.StatusBadRequest, msg+".", "invalid_body")
}

// jsonType names the JSON type of a raw value as schema validators do.
func jsonType(v json.RawMessage) string {
	switch b := bytes.TrimSpace(v); {
	case len(b) == 0 || string(b) == "null":
		return "null"
	case b[0] == '"':
		return "string"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case string(b) == "true" || string(b) == "false":
		return "boolean"
	default:
		return "number"
	}
}

// validateStringProperty checks the typed string properties of ClientUpdate
// and writes a 400 if the value is not acceptable.
func validateStringProperty(w http.ResponseWriter, key string, raw json.RawMessage) bool {
	if t := jsonType(raw); t != "string" {
		payloadError(w, "Expected type string but found type "+t, key)
		return false
	}
	var v string
	_ = json.Unmarshal(raw, &v)
	n := utf8.RuneCountInString(v)
	switch {
	case key != "description" && n < 1:
		payloadError(w, "String is too short (0 chars), minimum 1", key)
		return false
	case key == "name" && strings.ContainsAny(v, "<>"):
		payloadError(w, "String does not match pattern: ^[^<>]+$", key)
		return false
	case key == "description" && n > 140:
		payloadError(w, "String is too long ("+strconv.Itoa(n)+" chars), maximum 140", key)
		return false
	}
	return true
}

// patchClient implements PATCH /api/v2/clients/{id}. Setting client_secret
// needs update:client_keys (client_authentication_methods needs
// update:client_credentials); other properties need update:clients or
// update:client_keys. A null value unsets an optional property. The response
// is the updated client, including client_secret unless the client is on
// private_key_jwt or self_signed_tls_client_auth.
//
// client_authentication_methods attaches 1 to MaxCredentials of the
// client's own unexpired credentials, by id, to private_key_jwt (public_key
// credentials) or self_signed_tls_client_auth (x509_cert credentials); a
// null method detaches its credentials, a null client_authentication_methods
// all of them, and a method the object leaves out keeps its state. A client
// has exactly one of token_endpoint_auth_method, private_key_jwt and
// self_signed_tls_client_auth: the PATCH that enables a method must set
// token_endpoint_auth_method to null (and the other method, if set, to
// null), and the one that disables it must set a token_endpoint_auth_method
// (authmethods.go).
func (s *Server) patchClient(w http.ResponseWriter, r *http.Request, scopes []string, id string) {
	if !requireScope(w, scopes, scopeUpdateClients, scopeUpdateClientKeys) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload", "")
		return
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload JSON format", "")
		return
	}
	if t := jsonType(body); t != "object" {
		payloadError(w, "Expected type object but found type "+t, "")
		return
	}
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(body, &patch); err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request payload JSON format", "")
		return
	}

	keys := make([]string, 0, len(patch))
	for k := range patch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !updatableProperties[k] {
			payloadError(w, "Additional properties not allowed: "+k, "")
			return
		}
	}
	for _, k := range []string{"name", "description", "client_secret"} {
		if raw, ok := patch[k]; ok && !validateStringProperty(w, k, raw) {
			return
		}
	}
	methodsRaw, setsMethods := patch["client_authentication_methods"]
	var methodsChange methodsPatch
	if setsMethods {
		mp, refusal := parseAuthMethods(methodsRaw)
		if refusal != nil {
			refusal.write(w)
			return
		}
		methodsChange = mp
	}
	teamRaw, setsTEAM := patch["token_endpoint_auth_method"]
	if setsTEAM {
		if refusal := validateTokenEndpointAuthMethod(teamRaw); refusal != nil {
			refusal.write(w)
			return
		}
	}
	if _, ok := patch["client_secret"]; ok && !requireScope(w, scopes, scopeUpdateClientKeys) {
		return
	}
	if setsMethods && !requireScope(w, scopes, scopeUpdateClientCred) {
		return
	}

	s.mu.Lock()
	rec, ok := s.clients[id]
	var obj map[string]json.RawMessage
	var refusal *authMethodError
	newAuth := authState{}
	if ok {
		newAuth = rec.auth
	}
	if ok && (setsMethods || setsTEAM) {
		// A client has exactly one of a token_endpoint_auth_method (its
		// secret), private_key_jwt and self_signed_tls_client_auth.
		hasTEAM := rec.hasTokenEndpointAuthMethod()
		if setsTEAM {
			hasTEAM = jsonType(teamRaw) != "null"
		}
		methods := methodsChange.apply(rec.auth)
		now := s.now()
		for _, m := range []string{MethodPrivateKeyJWT, MethodSelfSignedTLS} {
			if ids := methodsChange.set[m]; refusal == nil && ids != nil {
				refusal = checkAttachableLocked(rec, m, ids, now)
			}
		}
		if refusal == nil {
			refusal = checkMethods(hasTEAM, methods)
		}
		if refusal == nil {
			newAuth = stateOf(methods)
		}
	}
	if ok && refusal == nil {
		for _, k := range keys {
			raw := patch[k]
			switch k {
			case "client_authentication_methods":
				if s.setAuthLocked(rec, newAuth, true) {
					s.stats.AuthMethodPatches[id]++
				}
			case "name":
				_ = json.Unmarshal(raw, &rec.name)
			case "client_secret":
				var secret string
				_ = json.Unmarshal(raw, &secret)
				if secret != rec.secret {
					s.replaceSecretLocked(rec, secret)
					s.stats.SecretPatches[id]++
				}
			default:
				if jsonType(raw) == "null" {
					delete(rec.attrs, k)
				} else {
					rec.attrs[k] = append(json.RawMessage(nil), raw...)
				}
			}
		}
		obj = s.renderLocked(rec, true)
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeNoClient(w)
		return
	case refusal != nil:
		refusal.write(w)
		return
	}
	if s.runFault(AfterApply, w, r, id, endpointManagement) {
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// setOf returns a set of the given strings.
func setOf(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, it := range items {
		m[it] = true
	}
	return m
}
