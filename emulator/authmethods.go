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
// token_endpoint_auth_method (client secret) or its client_authentication_methods
// (private_key_jwt with attached credentials), which exclude each other, and
// how a change of them propagates to the token endpoint.

// tokenEndpointAuthMethods are the values token_endpoint_auth_method may
// take besides null (Management API reference, "Update a client").
var tokenEndpointAuthMethods = []string{"none", "client_secret_post", "client_secret_basic"}

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

// parseAuthMethods validates the client_authentication_methods value of a
// PATCH body as far as it can without the client: its shape and the list of
// credential IDs of private_key_jwt. It returns the IDs (nil for null, {} or
// a null private_key_jwt: no private_key_jwt method).
func parseAuthMethods(raw json.RawMessage) ([]string, *authMethodError) {
	const prop = "client_authentication_methods"
	switch t := jsonType(raw); t {
	case "null":
		return nil, nil
	case "object":
	default:
		return nil, schemaError("Expected type object but found type "+t, prop)
	}
	var methods map[string]json.RawMessage
	_ = json.Unmarshal(raw, &methods)
	for _, k := range sortedKeys(methods) {
		switch k {
		case "private_key_jwt":
		case "tls_client_auth", "self_signed_tls_client_auth":
			if jsonType(methods[k]) != "null" {
				return nil, &authMethodError{status: http.StatusBadRequest, code: "invalid_body",
					message: k + " needs mTLS credentials, which the emulator does not offer; only private_key_jwt is supported"}
			}
		default:
			return nil, schemaError("Additional properties not allowed: "+k, prop)
		}
	}
	pkj, ok := methods["private_key_jwt"]
	if !ok || jsonType(pkj) == "null" {
		return nil, nil
	}
	if t := jsonType(pkj); t != "object" {
		return nil, schemaError("Expected type object but found type "+t, prop)
	}
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(pkj, &obj)
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

// checkAttachableLocked checks that ids name credentials of rec that have
// not expired at now. s.mu must be held.
func checkAttachableLocked(rec *clientRecord, ids []string, now time.Time) *authMethodError {
	for _, id := range ids {
		c := rec.findCredential(id)
		if c == nil {
			return &authMethodError{status: http.StatusBadRequest, code: "invalid_body",
				message: "Credential " + id + " does not exist for this client"}
		}
		if c.expiredAt(now) {
			return &authMethodError{status: http.StatusBadRequest, code: "invalid_body",
				message: "Credential " + id + " has expired and cannot be enabled for private_key_jwt"}
		}
	}
	return nil
}

// checkExclusive checks the rule that a client has exactly one of a
// token_endpoint_auth_method and a private_key_jwt method, as it would be
// with hasTEAM and pkj.
func checkExclusive(hasTEAM, pkj bool) *authMethodError {
	switch {
	case hasTEAM && pkj:
		return &authMethodError{status: http.StatusBadRequest, code: "invalid_body",
			message: "token_endpoint_auth_method and client_authentication_methods.private_key_jwt cannot both be set: set token_endpoint_auth_method to null to use private_key_jwt"}
	case !hasTEAM && !pkj:
		return &authMethodError{status: http.StatusBadRequest, code: "invalid_body",
			message: "A client needs either a token_endpoint_auth_method or client_authentication_methods: token_endpoint_auth_method cannot be null while client_authentication_methods is not set"}
	}
	return nil
}

// hasTokenEndpointAuthMethod reports whether rec's stored
// token_endpoint_auth_method is set.
func (rec *clientRecord) hasTokenEndpointAuthMethod() bool {
	raw, ok := rec.attrs["token_endpoint_auth_method"]
	return ok && jsonType(raw) != "null"
}

// replacedAuth is a set of attached credentials (nil: the client secret)
// that a PATCH replaced at a given time.
type replacedAuth struct {
	attached   []string
	replacedAt time.Time
}

// setAttachedLocked makes ids rec's attached private_key_jwt credentials (nil:
// none, the client authenticates with its secret), remembering the previous
// set while it propagates if propagate is set. It reports whether anything
// changed. s.mu must be held.
func (s *Server) setAttachedLocked(rec *clientRecord, ids []string, propagate bool) bool {
	if slices.Equal(rec.attached, ids) {
		return false
	}
	if propagate && s.propagation > 0 {
		rec.previousAuth = append(rec.previousAuth, replacedAuth{attached: rec.attached, replacedAt: s.now()})
	}
	rec.attached = slices.Clone(ids)
	return true
}

// visibleAttachedLocked returns the attached credentials a token request at
// now sees: while a change of them propagates (Options.PropagationDelay), the
// previous or the current set, uniformly at random, like secrets (see
// propagation.go). nil means the client is seen on its secret. s.mu must be
// held.
func (s *Server) visibleAttachedLocked(rec *clientRecord, now time.Time) []string {
	i := 0
	for i < len(rec.previousAuth) && (s.propagation <= 0 || !now.Before(rec.previousAuth[i].replacedAt.Add(s.propagation))) {
		i++
	}
	if i > 0 {
		rec.previousAuth = append(rec.previousAuth[:0], rec.previousAuth[i:]...)
	}
	if n := len(rec.previousAuth); n > 0 {
		if k := s.rng.IntN(n + 1); k < n {
			return rec.previousAuth[k].attached
		}
	}
	return rec.attached
}

// AttachCredentials switches a client to private_key_jwt with the given
// credentials attached (1 to MaxCredentials of its own, unexpired), setting
// token_endpoint_auth_method to null: what the PATCH of Auth0's guide does,
// but without a request and effective at once (no propagation), for setting
// up tests. It is not counted in Stats.
func (s *Server) AttachCredentials(clientID string, credentialIDs ...string) error {
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
	if err := checkAttachableLocked(rec, credentialIDs, now); err != nil {
		return errors.New(err.message)
	}
	delete(rec.attrs, "token_endpoint_auth_method")
	s.setAttachedLocked(rec, credentialIDs, false)
	return nil
}

// UseClientSecret switches a client back from private_key_jwt to its
// client secret with the given token_endpoint_auth_method
// ("client_secret_post", "client_secret_basic" or "none"), at once; the
// credentials stay stored. For setting up tests; not counted in Stats.
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
	s.setAttachedLocked(rec, nil, false)
	return nil
}

// renderAuthMethods returns the client_authentication_methods object of a
// client on private_key_jwt: the credentials by id only, as Auth0 answers a
// GET or PATCH of the client (go-auth0 recordings TestClient_Read,
// TestClientAuthenticationMethods/GetPrivateKeyJWT).
func renderAuthMethods(attached []string) json.RawMessage {
	refs := make([]map[string]string, len(attached))
	for i, id := range attached {
		refs[i] = map[string]string{"id": id}
	}
	return mustJSON(map[string]any{"private_key_jwt": map[string]any{"credentials": refs}})
}
