package vaulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// AgentOptions configures StartAgentWithOptions.
type AgentOptions struct {
	// Token is the token the agent uses (auto_auth method "token_file",
	// available since Vault 1.13). It needs the "default" policy, which
	// allows the lookup-self the agent performs.
	Token string
	// Template is the consul-template text to render (the contents of the
	// template stanza, e.g. `{{ with secret "auth0/creds/myapp" }}...{{ end }}`).
	Template string
	// StaticSecretRenderInterval is template_config's
	// static_secret_render_interval: how often a secret without a lease is
	// re-read. Zero leaves Vault's default (5 minutes).
	StaticSecretRenderInterval time.Duration
}

// Agent is a running `vault agent`.
type Agent struct {
	// RenderedPath is the template's destination file.
	RenderedPath string
	// ConfigPath is the agent's configuration file.
	ConfigPath string

	proc *process
}

// StartAgent runs a Vault Agent against v that authenticates with token and
// renders template to a file, whose path it returns (the file appears once
// the agent has rendered; see WaitForFile). The agent is stopped when the
// test ends; if the test failed, the tail of its log is written to the test
// log.
func StartAgent(t testing.TB, v *Vault, token string, template string) (renderedPath string) {
	t.Helper()
	return StartAgentWithOptions(t, v, AgentOptions{Token: token, Template: template}).RenderedPath
}

// StartAgentWithOptions is StartAgent with more settings, returning the Agent.
func StartAgentWithOptions(t testing.TB, v *Vault, opts AgentOptions) *Agent {
	t.Helper()
	dir := t.TempDir()
	templatePath := filepath.Join(dir, "template.ctmpl")
	renderedPath := filepath.Join(dir, "rendered")
	if err := os.WriteFile(templatePath, []byte(opts.Template), 0o600); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "exit_after_auth = false\n\n")
	fmt.Fprintf(&cfg, "template_config {\n  exit_on_retry_failure = true\n")
	if opts.StaticSecretRenderInterval > 0 {
		fmt.Fprintf(&cfg, "  static_secret_render_interval = %s\n", hclString(opts.StaticSecretRenderInterval.String()))
	}
	fmt.Fprintf(&cfg, "}\n\n")
	fmt.Fprintf(&cfg, "template {\n  source      = %s\n  destination = %s\n  perms       = \"0600\"\n}\n",
		hclString(templatePath), hclString(renderedPath))
	a := StartAgentConfig(t, v, opts.Token, cfg.String())
	a.RenderedPath = renderedPath
	return a
}

// Logs returns the agent's combined output so far.
func (a *Agent) Logs() string { return a.proc.logs() }

// Exited reports whether the agent process has ended (it exits when it
// cannot authenticate or render, as exit_on_retry_failure is set).
func (a *Agent) Exited() bool { return a.proc.exited() }

// Stop stops the agent and waits for it to exit.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	a.proc.stop(10 * time.Second)
}

// hclString quotes s as an HCL string literal.
func hclString(s string) string { return strconv.Quote(s) }

// WaitForFile polls path until it exists and pred (nil: any content) accepts
// its content, and returns that content. It fails the test after timeout,
// reporting the last content seen.
func WaitForFile(t testing.TB, path string, pred func(content string) bool, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for {
		b, err := os.ReadFile(path)
		lastErr = err
		if err == nil {
			last = string(b)
			if pred == nil || pred(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				t.Fatalf("vaulttest: %s not ready after %v: %v", path, timeout, lastErr)
			}
			t.Fatalf("vaulttest: %s not ready after %v; last content:\n%s", path, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
