package vaulttest

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultRootToken is the root token of dev servers started by StartDevServer.
const DefaultRootToken = "root"

// Vault is a running Vault dev server (in-memory storage, unsealed, root token
// DefaultRootToken).
type Vault struct {
	// Addr is the server's base URL, e.g. http://127.0.0.1:38201.
	Addr string
	// RootToken is a root token for the server.
	RootToken string
	// PluginDir is the server's plugin directory (-dev-plugin-dir).
	PluginDir string
	// Bin is the Vault binary, also used for CLI calls and agents.
	Bin string

	home string // HOME for the server, CLI calls and agents
	proc *process
	http *http.Client
}

// StartDevServer starts `vault server -dev` on a free loopback port pair (dev
// mode listens on PORT and uses PORT+1 as its cluster port) with pluginDir as
// its plugin directory and trace logging, and waits until /v1/sys/health
// answers. The server's combined output (which includes its plugins' logs) is
// available from Logs. The server is stopped when the test ends; if the test
// failed, the tail of its log is written to the test log first.
func StartDevServer(t testing.TB, pluginDir string) *Vault {
	t.Helper()
	bin := VaultBinary(t)
	absDir, err := filepath.Abs(pluginDir)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	home := t.TempDir()

	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		port := reservePortPair(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{
			"server", "-dev",
			"-dev-root-token-id=" + DefaultRootToken,
			"-dev-listen-address=" + addr,
			"-dev-plugin-dir=" + absDir,
			// Register nothing by itself: tests register the plugin explicitly.
			"-dev-plugin-init=false",
			"-dev-no-store-token",
			"-log-level=trace",
		}
		logPath := filepath.Join(home, fmt.Sprintf("vault-server-%d.log", attempt))
		proc, err := startProcess("vault server", bin, args, childEnv(home), logPath)
		if err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
		v := &Vault{
			Addr:      "http://" + addr,
			RootToken: DefaultRootToken,
			PluginDir: absDir,
			Bin:       bin,
			home:      home,
			proc:      proc,
			http:      &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}},
		}
		if lastErr = v.waitHealthy(60 * time.Second); lastErr == nil {
			t.Cleanup(func() { proc.stop(20 * time.Second) })
			logTailOnFailure(t, proc, 200)
			return v
		}
		proc.stop(5 * time.Second)
		// A port taken between reservation and bind (e.g. by a parallel
		// test process) is worth another try; anything else is not.
		if !strings.Contains(proc.logs(), "address already in use") {
			break
		}
	}
	t.Fatalf("vaulttest: vault dev server did not become healthy: %v", lastErr)
	return nil
}

// waitHealthy polls /v1/sys/health until it answers 200 (initialised,
// unsealed, active).
func (v *Vault) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var last string
	for time.Now().Before(deadline) {
		if v.proc.exited() {
			return fmt.Errorf("server exited (%v); output:\n%s", v.proc.exitError(), tail(v.proc.logs(), 40))
		}
		resp, err := client.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v (last: %s); output:\n%s", timeout, last, tail(v.proc.logs(), 40))
}

// Logs returns the server's combined output so far, including the logs of
// the plugins it runs. Plugin log lines reach it asynchronously; call Stop
// first to be sure every line has been written.
func (v *Vault) Logs() string { return v.proc.logs() }

// LogPath is the file holding the server's output.
func (v *Vault) LogPath() string { return v.proc.logPath }

// Stop shuts the server down gracefully (it stops its plugins) and waits for
// it to exit. It is safe to call more than once; the test's cleanup calls it
// too. Logs stays readable afterwards.
func (v *Vault) Stop(t testing.TB) {
	t.Helper()
	v.proc.stop(20 * time.Second)
}

var (
	portsMu  sync.Mutex
	reserved = map[int]bool{}
)

// reservePortPair finds a port P such that P and P+1 are both free on
// 127.0.0.1 and that no other server of this process was given P-1, P or P+1.
func reservePortPair(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 100; i++ {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("vaulttest: listen: %v", err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		if p >= 65535 || reserved[p-1] || reserved[p] || reserved[p+1] {
			l1.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		reserved[p], reserved[p+1] = true, true
		return p
	}
	t.Fatalf("vaulttest: no free pair of adjacent loopback ports")
	return 0
}
