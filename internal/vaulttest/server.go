package vaulttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
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
// 127.0.0.1 and reserves both for this process until it exits: no other
// server of this process, and no other process reserving ports this way
// (another test binary running in parallel), is given either.
//
// The ports are taken below the kernel's ephemeral range, where it never
// assigns ports on its own: between this check and Vault's bind, a port of that
// range can become the local end of any outgoing connection on the machine,
// and Vault then fails to listen on it ("bind: address already in use"), as
// happened to an active node's cluster port, leaving its standbys unable to
// reach it.
func reservePortPair(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := reservablePorts()
	for i := 0; i < 500; i++ {
		p := lo + rand.IntN(hi-lo)
		if reserved[p-1] || reserved[p] || reserved[p+1] || !bindable(p) || !bindable(p+1) {
			continue
		}
		if !tryLockFile(portLockPath(p)) {
			continue
		}
		if !tryLockFile(portLockPath(p + 1)) {
			reserved[p] = true // locked by this process: not offered again
			continue
		}
		reserved[p], reserved[p+1] = true, true
		return p
	}
	t.Fatalf("vaulttest: no free pair of adjacent loopback ports in %d-%d", lo, hi)
	return 0
}

// reservablePorts is the range reservePortPair picks from: below the kernel's
// ephemeral ports (net.ipv4.ip_local_port_range), above the well-known and
// commonly configured ones.
func reservablePorts() (lo, hi int) {
	lo, hi = 20000, 32767 // Linux's default ephemeral range starts at 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start > 12000 {
				lo, hi = 10000, start-1
			}
		}
	}
	return lo, hi
}

// bindable reports whether port is free on 127.0.0.1 now.
func bindable(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// portLockPath is the file whose lock reserves port across processes.
func portLockPath(port int) string {
	return filepath.Join(os.TempDir(), "vaulttest-port-"+strconv.Itoa(port)+".lock")
}
