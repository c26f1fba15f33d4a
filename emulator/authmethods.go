package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// This file implements a client's authentication method: its
// token_endpoint_auth_method (client secret) or one method of its
// client_authentication_methods (private_key_jwt with attached public_key
// credentials, or self_signed_tls_client_auth with attached x509_cert
// credentials), exactly one at a time, and how a change of them propagates
// to the token endpoint.

// The client_authentication_methods the emulator supports.
const (
	// MethodPrivateKeyJWT authenticates with client assertions signed by
	// the private key of an attached public_key credential (assertion.go).
	MethodPrivateKeyJWT = "private_key_jwt"
	// MethodSelfSignedTLS authenticates with a self-signed client
	// certificate, presented in an mTLS handshake with the tenant's edge,
	// that matches an attached x509_cert credential (mtls.go).
	MethodSelfSignedTLS = "self_signed_tls_client_auth"
	// methodCATLS is Auth0's CA-signed mTLS method, which the emulator
	// refuses.
	methodCATLS = "tls_client_auth"
)

// methodCredentialType is the credential type each method attaches.
var methodCredentialType = map[string]string{
	MethodPrivateKeyJWT: CredentialTypePublicKey,
	MethodSelfSignedTLS: CredentialTypeX509Cert,
}

// tokenEndpointAuthMethods are the values token_endpoint_auth_method may
// take besides null (Management API reference, "Update a client").
var tokenEndpointAuthMethods = []string{"none", "client_secret_post", "client_secret_basic"}

// authState is a client's client_authentication_methods: the method
// (MethodPrivateKeyJWT or MethodSelfSignedTLS) and the IDs of the
// credentials attached to it, or the zero value while the client
// authenticates with its secret (token_endpoint_auth_method).
type authState struct {
	method string
	creds  []string
}

func (a authState) equal(b authState) bool {
	return a.method == b.method && slices.Equal(a.creds, b.creds)
}

// has reports whether the client is on method.
func (a authState) has(method string) bool { return a.method == method && len(a.creds) > 0 }

// authMethodError is a refusal of a PATCH's authentication method settings.
type authMethodError struct {
	status   int
	message  string
	code     string
	property string // for payloadError; "" if message is final
}

func (e *authMethodError) write(w http.ResponseWriter) {
	if e.property != "" {
		payloadError(w, e.message, e.property)
		return
	}
	writeAPIError(w, e.status, e.message, e.code)
}

func schemaError(problem, property string) *authMethodError {
	return &authMethodError{status: http.StatusBadRequest, message: problem, code: "invalid_body", property: property}
}

func invalidBody(message string) *authMethodError {
	return &authMethodError{status: http.StatusBadRequest, code: "invalid_body", message: message}
}

// methodsPatch is the client_authentication_methods value of a PATCH: null
// (clear: every method removed) or an object whose properties each set a
// method (set[m] holds its credential IDs) or remove it (set[m] nil, for a
// null value). Methods the object does not name keep their state, so a
// PATCH that names one method while the client is on another would leave it
// with two, which is refused (the harsher reading of how Auth0 merges the
// object).
type methodsPatch struct {
	clear bool
	set   map[string][]string
}

// apply returns the methods cur would have after the patch, as a map from
// method to credential IDs.
func (p methodsPatch) apply(cur authState) map[string][]string {
	out := map[string][]string{}
	if cur.method != "" && !p.clear {
		out[cur.method] = cur.creds
	}
	for m, ids := range p.set {
		if ids == nil {
			delete(out, m)
		} else {
			out[m] = ids
		}
	}
	return out
}

// parseAuthMethods validates the client_authentication_methods value of a
// PATCH body as far as it can without the client: its shape and the lists
// of credential IDs of private_key_jwt and self_signed_tls_client_auth.
func parseAuthMethods(raw json.RawMessage) (methodsPatch, *authMethodError) {
	const prop = "client_authentication_methods"
	switch t := jsonType(raw); t {
	case "null":
		return methodsPatch{clear: true}, nil
	case "object":
	default:
		return methodsPatch{}, schemaError("Expected type object but found type "+t, prop)
	}
	var methods map[string]json.RawMessage
	_ = json.Unmarshal(raw, &methods)
	patch := methodsPatch{set: map[string][]string{}}
	for _, k := range sortedKeys(methods) {
		switch k {
		case MethodPrivateKeyJWT, MethodSelfSignedTLS:
		case methodCATLS:
			if jsonType(methods[k]) != "null" {
				return methodsPatch{}, invalidBody(methodCATLS + " needs CA-signed certificates (cert_subject_dn credentials), which the emulator does not offer; use " +
					MethodSelfSignedTLS + " with x509_cert credentials, or " + MethodPrivateKeyJWT)
			}
			continue
		default:
			return methodsPatch{}, schemaError("Additional properties not allowed: "+k, prop)
		}
		ids, refusal := parseMethodCredentials(methods[k])
		if refusal != nil {
			return methodsPatch{}, refusal
		}
		patch.set[k] = ids
	}
	return patch, nil
}

// parseMethodCredentials reads one method's value: null (nil) or
// {"credentials":[{"id":...}, ...]} with 1 to MaxCredentials unique ids.
func parseMethodCredentials(raw json.RawMessage) ([]string, *authMethodError) {
	const prop = "client_authentication_methods"
	switch t := jsonType(raw); t {
	case "null":
		return nil, nil
	case "object":
	default:
		return nil, schemaError("Expected type object but found type "+t, prop)
	}
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(raw, &obj)
	for _, k := range sortedKeys(obj) {
		if k != "credentials" {
			return nil, schemaError("Additional properties not allowed: "+k, prop)
		}
	}
	creds, ok := obj["credentials"]
	if !ok {
		return nil, schemaError("Missing required property: credentials", prop)
	}
	if t := jsonType(creds); t != "array" {
		return nil, schemaError("Expected type array but found type "+t, prop)
	}
	var items []json.RawMessage
	_ = json.Unmarshal(creds, &items)
	switch n := len(items); {
	case n < 1:
		return nil, schemaError("Array is too short (0), minimum 1", prop)
	case n > MaxCredentials:
		return nil, schemaError("Array is too long ("+strconv.Itoa(n)+"), maximum "+strconv.Itoa(MaxCredentials), prop)
	}
	ids := make([]string, 0, len(items))
	for i, item := range items {
		if t := jsonType(item); t != "object" {
			return nil, schemaError("Expected type object but found type "+t, prop)
		}
		// Only the id: "PATCH /clients/{id} rejects any credential field
		// other than `id`" (go-auth0, Client.CleanForPatch).
		var ref map[string]json.RawMessage
		_ = json.Unmarshal(item, &ref)
		for _, k := range sortedKeys(ref) {
			if k != "id" {
				return nil, schemaError("Additional properties not allowed: "+k, prop)
			}
		}
		idRaw, ok := ref["id"]
		if !ok {
			return nil, schemaError("Missing required property: id", prop)
		}
		if t := jsonType(idRaw); t != "string" {
			return nil, schemaError("Expected type string but found type "+t, prop)
		}
		var id string
		_ = json.Unmarshal(idRaw, &id)
		if j := slices.Index(ids, id); j >= 0 {
			return nil, schemaError("Array items are not unique (indexes "+strconv.Itoa(j)+" and "+strconv.Itoa(i)+")", prop)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// validateTokenEndpointAuthMethod checks a PATCH's token_endpoint_auth_method.
func validateTokenEndpointAuthMethod(raw json.RawMessage) *authMethodError {
	const prop = "token_endpoint_auth_method"
	switch t := jsonType(raw); t {
	case "null":
		return nil
	case "string":
	default:
		return schemaError("Expected type string but found type "+t, prop)
	}
	var v string
	_ = json.Unmarshal(raw, &v)
	if !slices.Contains(tokenEndpointAuthMethods, v) {
		return schemaError("No enum match for: "+strconv.Quote(v), prop)
	}
	return nil
}

// checkAttachableLocked checks that ids name credentials of rec of the type
// method attaches, none expired at now. s.mu must be held.
func checkAttachableLocked(rec *clientRecord, method string, ids []string, now time.Time) *authMethodError {
	want := methodCredentialType[method]
	for _, id := range ids {
		c := rec.findCredential(id)
		if c == nil {
			return invalidBody("Credential " + id + " does not exist for this client")
		}
		if c.ctype != want {
			return invalidBody("Credential " + id + " is of type " + c.ctype + " and cannot be enabled for " + method +
				", which takes " + want + " credentials")
		}
		if c.expiredAt(now) {
			return invalidBody("Credential " + id + " has expired and cannot be enabled for " + method)
		}
	}
	return nil
}

// checkMethods checks the rule that a client has exactly one of a
// token_endpoint_auth_method, a private_key_jwt method and a
// self_signed_tls_client_auth method, as it would be with hasTEAM and
// methods (method -> attached credentials).
func checkMethods(hasTEAM bool, methods map[string][]string) *authMethodError {
	names := make([]string, 0, len(methods))
	for m := range methods {
		names = append(names, m)
	}
	slices.Sort(names)
	switch {
	case len(names) > 1:
		return invalidBody("client_authentication_methods can hold only one method, not " + names[0] + " and " + names[1] +
			": set the other to null in the same PATCH")
	case hasTEAM && len(names) == 1:
		return invalidBody("token_endpoint_auth_method and client_authentication_methods." + names[0] +
			" cannot both be set: set token_endpoint_auth_method to null to use " + names[0])
	case !hasTEAM && len(names) == 0:
		return invalidBody("A client needs either a token_endpoint_auth_method or client_authentication_methods: token_endpoint_auth_method cannot be null while client_authentication_methods is not set")
	}
	return nil
}

// stateOf returns the authState of methods, which checkMethods accepted.
func stateOf(methods map[string][]string) authState {
	for m, ids := range methods {
		return authState{method: m, creds: slices.Clone(ids)}
	}
	return authState{}
}

// hasTokenEndpointAuthMethod reports whether rec's stored
// token_endpoint_auth_method is set.
func (rec *clientRecord) hasTokenEndpointAuthMethod() bool {
	raw, ok := rec.attrs["token_endpoint_auth_method"]
	return ok && jsonType(raw) != "null"
}

// replacedAuth is an authentication method configuration (the zero
// authState: the client secret) that a PATCH replaced at a given time.
type replacedAuth struct {
	auth       authState
	replacedAt time.Time
}

// setAuthLocked makes a rec's client_authentication_methods (the zero
// authState: none, the client authenticates with its secret), remembering
// the previous configuration while it propagates if propagate is set. It
// reports whether anything changed. s.mu must be held.
func (s *Server) setAuthLocked(rec *clientRecord, a authState, propagate bool) bool {
	if len(a.creds) == 0 {
		a = authState{}
	}
	if rec.auth.equal(a) {
		return false
	}
	if propagate && s.propagation > 0 {
		rec.previousAuth = append(rec.previousAuth, replacedAuth{auth: rec.auth, replacedAt: s.now()})
	}
	rec.auth = authState{method: a.method, creds: slices.Clone(a.creds)}
	return true
}

// visibleAuthLocked returns the authentication method configuration a
// token request at now sees: while a change of it propagates
// (Options.PropagationDelay), the previous or the current one, uniformly at
// random, like secrets (see propagation.go). The zero authState means the
// client is seen on its secret. s.mu must be held.
func (s *Server) visibleAuthLocked(rec *clientRecord, now time.Time) authState {
	i := 0
	for i < len(rec.previousAuth) && (s.propagation <= 0 || !now.Before(rec.previousAuth[i].replacedAt.Add(s.propagation))) {
		i++
	}
	if i > 0 {
		rec.previousAuth = append(rec.previousAuth[:0], rec.previousAuth[i:]...)
	}
	if n := len(rec.previousAuth); n > 0 {
		if k := s.rng.IntN(n + 1); k < n {
			return rec.previousAuth[k].auth
		}
	}
	return rec.auth
}

// attach implements AttachCredentials and AttachCertificates.
func (s *Server) attach(clientID, method string, credentialIDs []string) error {
	if n := len(credentialIDs); n < 1 || n > MaxCredentials {
		return fmt.Errorf("emulator: attach 1 to %d credentials, not %d", MaxCredentials, n)
	}
	for i, id := range credentialIDs {
		if slices.Contains(credentialIDs[:i], id) {
			return fmt.Errorf("emulator: credential %s listed twice", id)
		}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return fmt.Errorf("emulator: unknown client %q", clientID)
	}
	if err := checkAttachableLocked(rec, method, credentialIDs, now); err != nil {
		return errors.New(err.message)
	}
	delete(rec.attrs, "token_endpoint_auth_method")
	s.setAuthLocked(rec, authState{method: method, creds: credentialIDs}, false)
	return nil
}

// AttachCredentials switches a client to private_key_jwt with the given
// public_key credentials attached (1 to MaxCredentials of its own,
// unexpired), setting token_endpoint_auth_method to null: what the PATCH of
// Auth0's guide does, but without a request and effective at once (no
// propagation), for setting up tests. It is not counted in Stats.
func (s *Server) AttachCredentials(clientID string, credentialIDs ...string) error {
	return s.attach(clientID, MethodPrivateKeyJWT, credentialIDs)
}

// AttachCertificates switches a client to self_signed_tls_client_auth with
// the given x509_cert credentials attached (1 to MaxCredentials of its own,
// unexpired), setting token_endpoint_auth_method to null and replacing any
// private_key_jwt method: the PATCH of Auth0's "Configure mTLS for a
// client", without a request and effective at once, for setting up tests.
// It is not counted in Stats.
func (s *Server) AttachCertificates(clientID string, credentialIDs ...string) error {
	return s.attach(clientID, MethodSelfSignedTLS, credentialIDs)
}

// UseClientSecret switches a client back from private_key_jwt or
// self_signed_tls_client_auth to its client secret with the given
// token_endpoint_auth_method ("client_secret_post", "client_secret_basic"
// or "none"), at once; the credentials stay stored. For setting up tests;
// not counted in Stats.
func (s *Server) UseClientSecret(clientID, tokenEndpointAuthMethod string) error {
	if !slices.Contains(tokenEndpointAuthMethods, tokenEndpointAuthMethod) {
		return fmt.Errorf("emulator: unknown token_endpoint_auth_method %q", tokenEndpointAuthMethod)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return fmt.Errorf("emulator: unknown client %q", clientID)
	}
	rec.attrs["token_endpoint_auth_method"] = mustJSON(tokenEndpointAuthMethod)
	s.setAuthLocked(rec, authState{}, false)
	return nil
}

// AuthMethod reports how a client authenticates at the token endpoint:
// MethodPrivateKeyJWT, MethodSelfSignedTLS, or its token_endpoint_auth_method
// ("client_secret_post", "client_secret_basic", "none"). It reports the
// current configuration, not what a token request sees while a change
// propagates. ok is false for an unknown client.
func (s *Server) AuthMethod(clientID string) (method string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.clients[clientID]
	if !ok {
		return "", false
	}
	if rec.auth.method != "" {
		return rec.auth.method, true
	}
	var team string
	_ = json.Unmarshal(rec.attrs["token_endpoint_auth_method"], &team)
	return team, true
}

// renderAuthMethods returns the client_authentication_methods object of a
// client on a.method: the credentials by id only, as Auth0 answers a GET or
// PATCH of the client (go-auth0 recordings TestClient_Read,
// TestClientAuthenticationMethods/GetPrivateKeyJWT and
// GetSelfSignedTLSClientAuth).
func renderAuthMethods(a authState) json.RawMessage {
	refs := make([]map[string]string, len(a.creds))
	for i, id := range a.creds {
		refs[i] = map[string]string{"id": id}
	}
	return mustJSON(map[string]any{a.method: map[string]any{"credentials": refs}})
}
