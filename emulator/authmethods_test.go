package emulator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

func TestMigrateToPrivateKeyJWT(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	a := p.newCred(appID, 0, "")
	b := p.newCred(appID, 1, "")
	client := "/api/v2/clients/" + appID

	// The PATCH of Auth0's guide: credentials attached, token endpoint
	// method null, in one body.
	c := p.attach(appID, a)
	if c["token_endpoint_auth_method"] != nil || c["client_secret"] != nil {
		t.Errorf("PATCH answer %v", c)
	}
	_, body := p.call("GET", client, nil)
	want := `"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"` + a + `"}]}}`
	if !strings.Contains(body, want) || !strings.Contains(body, `"token_endpoint_auth_method":null`) || strings.Contains(body, "client_secret") {
		t.Errorf("GET after migration: %s", body)
	}
	if !p.srv.UsesPrivateKeyJWT(appID) {
		t.Error("UsesPrivateKeyJWT false")
	}
	status, body := p.call("GET", client+"?fields=client_authentication_methods,token_endpoint_auth_method", nil)
	expect(t, status, body, 200, `{"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"`+a+`"}]}},"token_endpoint_auth_method":null}`)

	// Rotation: attach both, then the new one only; the method stays
	// private_key_jwt without repeating token_endpoint_auth_method.
	for _, ids := range [][]string{{a, b}, {b}} {
		refs := []map[string]string{}
		for _, id := range ids {
			refs = append(refs, map[string]string{"id": id})
		}
		status, body := p.call("PATCH", client, map[string]any{"client_authentication_methods": map[string]any{"private_key_jwt": map[string]any{"credentials": refs}}})
		if status != 200 {
			t.Fatalf("attach %v: %d %s", ids, status, body)
		}
	}
	if _, attached, _ := p.srv.Credentials(appID); len(attached) != 1 || attached[0] != b {
		t.Errorf("attached %v", attached)
	}
	// The same set again changes nothing and is not counted.
	p.attach(appID, b)
	if n := p.srv.Stats().AuthMethodPatches[appID]; n != 3 {
		t.Errorf("AuthMethodPatches = %d, want 3", n)
	}

	// rotate-secret is refused while on private_key_jwt.
	status, body = p.call("POST", client+"/rotate-secret", nil)
	expect(t, status, body, 400, `{"statusCode":400,"error":"Bad Request","message":"This endpoint cannot be used with clients configured with Private Key JWT authentication method","errorCode":"operation_not_supported"}`)

	// Back to the secret: client_authentication_methods null and a token
	// endpoint method, together.
	status, body = p.call("PATCH", client, `{"client_authentication_methods":null}`)
	expect(t, status, body, 400, `{"statusCode":400,"error":"Bad Request","message":"A client needs either a token_endpoint_auth_method or client_authentication_methods: token_endpoint_auth_method cannot be null while client_authentication_methods is not set","errorCode":"invalid_body"}`)
	status, body = p.call("PATCH", client, `{"client_authentication_methods":null,"token_endpoint_auth_method":"client_secret_basic"}`)
	c = decodeObject(t, body)
	if status != 200 || c["client_secret"] != appSecret || c["token_endpoint_auth_method"] != "client_secret_basic" || c["client_authentication_methods"] != nil {
		t.Fatalf("switch back: %d %s", status, body)
	}
	if p.srv.UsesPrivateKeyJWT(appID) {
		t.Error("still on private_key_jwt")
	}
	if stored, _, _ := p.srv.Credentials(appID); len(stored) != 2 {
		t.Errorf("switching back dropped credentials: %+v", stored)
	}
	if status, body := p.call("POST", client+"/rotate-secret", nil); status != 200 {
		t.Errorf("rotate-secret after switching back: %d %s", status, body)
	}
}

func TestAuthMethodPatchRefusals(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	a := p.newCred(appID, 0, "")
	b := p.newCred(appID, 1, "")
	foreign := p.newCred(otherAppID, 2, "")
	expiring := p.newCred(otherAppID, 3, "")
	if status, body := p.call("PATCH", "/api/v2/clients/"+otherAppID+"/credentials/"+expiring,
		map[string]any{"expires_at": p.clock.Now().Add(time.Minute).Format(time.RFC3339)}); status != 200 {
		t.Fatal(status, body)
	}
	p.clock.Advance(time.Minute)

	const both = "token_endpoint_auth_method and client_authentication_methods.private_key_jwt cannot both be set: set token_endpoint_auth_method to null to use private_key_jwt"
	pkj := func(creds string) string {
		return `{"token_endpoint_auth_method":null,"client_authentication_methods":{"private_key_jwt":{"credentials":` + creds + `}}}`
	}
	tests := []struct {
		name, client, body, wantMsg string
	}{
		{"token_endpoint_auth_method left set", appID, `{"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"` + a + `"}]}}}`, both},
		{"token_endpoint_auth_method set to another value", appID, `{"token_endpoint_auth_method":"client_secret_basic","client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"` + a + `"}]}}}`, both},
		{"token_endpoint_auth_method private_key_jwt", appID, `{"token_endpoint_auth_method":"private_key_jwt"}`,
			`Payload validation error: 'No enum match for: "private_key_jwt"' on property token_endpoint_auth_method`},
		{"token_endpoint_auth_method null alone", appID, `{"token_endpoint_auth_method":null}`, "A client needs either a token_endpoint_auth_method or client_authentication_methods"},
		{"no credentials", appID, pkj(`[]`), "'Array is too short (0), minimum 1' on property client_authentication_methods"},
		{"three credentials", appID, pkj(`[{"id":"` + a + `"},{"id":"` + b + `"},{"id":"cred_c"}]`), "'Array is too long (3), maximum 2'"},
		{"duplicate", appID, pkj(`[{"id":"` + a + `"},{"id":"` + a + `"}]`), "'Array items are not unique (indexes 0 and 1)'"},
		{"unknown credential", appID, pkj(`[{"id":"cred_doesnotexist0000000"}]`), "Credential cred_doesnotexist0000000 does not exist for this client"},
		{"another client's credential", appID, pkj(`[{"id":"` + foreign + `"}]`), "Credential " + foreign + " does not exist for this client"},
		{"expired credential", otherAppID, pkj(`[{"id":"` + expiring + `"}]`), "Credential " + expiring + " has expired"},
		{"full credential object", appID, pkj(`[{"id":"` + a + `","kid":"x"}]`), "'Additional properties not allowed: kid'"},
		{"credential without id", appID, pkj(`[{}]`), "'Missing required property: id'"},
		{"id not a string", appID, pkj(`[{"id":1}]`), "'Expected type string but found type number'"},
		{"credentials missing", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{"private_key_jwt":{}}}`, "'Missing required property: credentials'"},
		{"unknown method", appID, `{"client_authentication_methods":{"client_secret_jwt":{}}}`, "'Additional properties not allowed: client_secret_jwt'"},
		{"mTLS method", appID, `{"client_authentication_methods":{"tls_client_auth":{"credentials":[{"id":"` + a + `"}]}}}`, "tls_client_auth needs CA-signed certificates"},
		{"methods not an object", appID, `{"client_authentication_methods":[]}`, "'Expected type object but found type array' on property client_authentication_methods"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.call("PATCH", "/api/v2/clients/"+tc.client, tc.body)
			_, msg, code := apiErr(t, body)
			if status != 400 || code != "invalid_body" || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}
	for _, id := range []string{appID, otherAppID} {
		if p.srv.UsesPrivateKeyJWT(id) {
			t.Errorf("%s moved to private_key_jwt by a refused PATCH", id)
		}
		_, body := p.call("GET", "/api/v2/clients/"+id, nil)
		if c := decodeObject(t, body); c["token_endpoint_auth_method"] != "client_secret_post" {
			t.Errorf("refused PATCH changed %s: %s", id, body)
		}
	}
	// A refused PATCH changes nothing else either.
	status, body := p.call("PATCH", "/api/v2/clients/"+appID, `{"name":"renamed","token_endpoint_auth_method":null}`)
	if status != 400 {
		t.Fatalf("%d %s", status, body)
	}
	if _, body := p.call("GET", "/api/v2/clients/"+appID, nil); !strings.Contains(body, `"name":"app"`) {
		t.Errorf("refused PATCH renamed the client: %s", body)
	}
	// Unknown client: 404 once the body is valid.
	status, body = p.call("PATCH", "/api/v2/clients/nope", pkj(`[{"id":"`+a+`"}]`))
	expect(t, status, body, 404, `{"statusCode":404,"error":"Not Found","message":"The client does not exist","errorCode":"inexistent_client"}`)
	if n := len(p.srv.Stats().AuthMethodPatches); n != 0 {
		t.Errorf("AuthMethodPatches = %v", p.srv.Stats().AuthMethodPatches)
	}
}
