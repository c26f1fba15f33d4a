package vaulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliTimeout bounds every CLI invocation.
const cliTimeout = 2 * time.Minute

// CLIError is the error of a CLI invocation that exited non-zero.
type CLIError struct {
	Args   []string
	Stdout string
	Stderr string
	Err    error
}

func (e *CLIError) Error() string {
	return fmt.Sprintf("vault %s: %v\nstderr: %s\nstdout: %s",
		strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr), strings.TrimSpace(e.Stdout))
}

// CLI runs the vault binary with args against this server, with VAULT_ADDR
// set and VAULT_TOKEN set to token (unless empty). It returns stdout; a
// non-zero exit yields a *CLIError that carries stderr.
func (v *Vault) CLI(t testing.TB, token string, args ...string) (stdout string, err error) {
	t.Helper()
	return v.cli(token, nil, args)
}

// MustCLI is CLI failing the test on error.
func (v *Vault) MustCLI(t testing.TB, token string, args ...string) string {
	t.Helper()
	out, err := v.CLI(t, token, args...)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return out
}

// CLIJSON runs the CLI with VAULT_FORMAT=json and decodes its output (for
// reads and writes: the whole secret, with the fields under "data").
// Numbers decode as float64.
func (v *Vault) CLIJSON(t testing.TB, token string, args ...string) (map[string]any, error) {
	t.Helper()
	out, err := v.cli(token, []string{"VAULT_FORMAT=json"}, args)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil // e.g. a write answered with 204
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("vault %s: decoding JSON output: %w\n%s", strings.Join(args, " "), err, out)
	}
	return m, nil
}

// MustCLIJSON is CLIJSON failing the test on error.
func (v *Vault) MustCLIJSON(t testing.TB, token string, args ...string) map[string]any {
	t.Helper()
	m, err := v.CLIJSON(t, token, args...)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return m
}

func (v *Vault) cli(token string, extraEnv, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.Bin, args...)
	env := append([]string{"VAULT_ADDR=" + v.Addr}, extraEnv...)
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	cmd.Env = childEnv(v.home, env...)
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CLIError{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// Response is a decoded Vault HTTP API answer.
type Response struct {
	Status int
	// Body is the whole decoded JSON body (nil for an empty body).
	Body map[string]any
	// Data is Body["data"] when it is an object.
	Data map[string]any
	// Auth is Body["auth"] when it is an object (token creation, logins).
	Auth map[string]any
	// Errors are Body["errors"].
	Errors []string
	// Warnings are Body["warnings"].
	Warnings []string
	// Raw is the body as received.
	Raw []byte
}

// Do sends method (GET, PUT, POST, DELETE, LIST...) to /v1/<path> with the
// token in X-Vault-Token and body, when non-nil, as JSON. path may carry a
// query string ("auth0/creds/myapp?version=1"). Transport errors and
// undecodable bodies fail the test; HTTP error statuses do not.
func (v *Vault) Do(t testing.TB, token, method, path string, body map[string]any) *Response {
	t.Helper()
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("vaulttest: encoding request body: %v", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.Addr+"/v1/"+strings.TrimPrefix(path, "/"), reqBody)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.http.Do(req)
	if err != nil {
		t.Fatalf("vaulttest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("vaulttest: %s %s: reading body: %v", method, path, err)
	}
	r := &Response{Status: resp.StatusCode, Raw: raw}
	if len(bytes.TrimSpace(raw)) == 0 {
		return r
	}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("vaulttest: %s %s: status %d, undecodable body %q: %v", method, path, resp.StatusCode, raw, err)
	}
	r.Data, _ = r.Body["data"].(map[string]any)
	r.Auth, _ = r.Body["auth"].(map[string]any)
	r.Errors = stringList(r.Body["errors"])
	r.Warnings = stringList(r.Body["warnings"])
	return r
}

// Request is Do returning the status, the "data" object and the "errors".
func (v *Vault) Request(t testing.TB, token, method, path string, body map[string]any) (status int, data map[string]any, errors []string) {
	t.Helper()
	r := v.Do(t, token, method, path, body)
	return r.Status, r.Data, r.Errors
}

func stringList(x any) []string {
	list, _ := x.([]any)
	var out []string
	for _, e := range list {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// RegisterPlugin registers the plugin binary PluginName of dir, which must be
// this server's plugin directory, in the catalog as a secrets plugin with the
// given SHA-256 and version (Vault 1.13 insists that version is exactly the
// one the binary reports).
func (v *Vault) RegisterPlugin(t testing.TB, dir, sha256hex, version string) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	if abs != v.PluginDir {
		t.Fatalf("vaulttest: RegisterPlugin: %s is not the server's plugin directory %s", abs, v.PluginDir)
	}
	v.MustCLI(t, v.RootToken, "plugin", "register",
		"-sha256="+sha256hex,
		"-version="+version,
		"-command="+PluginName,
		"secret", PluginName)
}

// Mount enables the registered plugin at path with the given plugin version.
func (v *Vault) Mount(t testing.TB, path, version string) {
	t.Helper()
	v.MustCLI(t, v.RootToken, "secrets", "enable",
		"-path="+path,
		"-plugin-version="+version,
		PluginName)
}

// WritePolicy creates or replaces the ACL policy name.
func (v *Vault) WritePolicy(t testing.TB, name, hcl string) {
	t.Helper()
	r := v.Do(t, v.RootToken, http.MethodPut, "sys/policies/acl/"+name, map[string]any{"policy": hcl})
	if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("vaulttest: writing policy %s: status %d: %v", name, r.Status, r.Errors)
	}
}

// CreateToken creates a token (orphan, one hour TTL) with the given policies
// plus "default", and returns it.
func (v *Vault) CreateToken(t testing.TB, policies ...string) string {
	t.Helper()
	if policies == nil {
		policies = []string{}
	}
	r := v.Do(t, v.RootToken, http.MethodPost, "auth/token/create-orphan", map[string]any{
		"policies": policies,
		"ttl":      "1h",
	})
	token, _ := r.Auth["client_token"].(string)
	if r.Status != http.StatusOK || token == "" {
		t.Fatalf("vaulttest: creating a token with policies %v: status %d: %v %s", policies, r.Status, r.Errors, r.Raw)
	}
	return token
}
