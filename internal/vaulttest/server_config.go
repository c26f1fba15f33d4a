package vaulttest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Storage backends a Node can use.
const (
	// StorageFile is Vault's "file" storage: one server, no HA.
	StorageFile = "file"
	// StorageRaft is integrated storage: a Node alone or one of a Cluster.
	StorageRaft = "raft"
)

// Health statuses of GET /v1/sys/health (with its default query).
const (
	HealthActive        = http.StatusOK                 // initialised, unsealed, active
	HealthStandby       = http.StatusTooManyRequests    // unsealed standby
	HealthUninitialized = http.StatusNotImplemented     // not initialised
	HealthSealed        = http.StatusServiceUnavailable // sealed
)

// NodeConfig configures a Vault server that runs from a configuration file
// and persistent storage, as in production, rather than in dev mode.
type NodeConfig struct {
	// Name names the node in logs and failure messages; it is the raft
	// node_id. Default "vault".
	Name string
	// Storage is StorageFile (default) or StorageRaft.
	Storage string
	// PluginDir is the server's plugin_directory; required.
	PluginDir string
	// RetryJoin lists the API addresses (http://host:port) of raft nodes to
	// join through retry_join stanzas.
	RetryJoin []string
	// PerformanceMultiplier is raft's performance_multiplier (1 to 10):
	// Vault's raft timeouts are its defaults times this. 0 leaves Vault's
	// default (5).
	PerformanceMultiplier int
	// LogLevel is the server's log level; default "debug".
	LogLevel string
}

// Node is a Vault server started from a configuration file on persistent
// storage. It can be killed (SIGKILL) and started again on the same storage
// and addresses, as often as a test likes. The embedded *Vault offers the
// CLI and HTTP helpers; its RootToken is set by Init (or by the caller).
type Node struct {
	*Vault
	// Name is NodeConfig.Name.
	Name string
	// ClusterAddr is the node's cluster address (https://127.0.0.1:PORT).
	ClusterAddr string
	// ConfigPath is the server's configuration file.
	ConfigPath string
	// DataDir holds the node's storage; it survives restarts.
	DataDir string

	cfg    NodeConfig
	port   int
	mu     sync.Mutex // guards Vault.proc and starts
	starts int
}

// NewNode reserves a loopback port pair (API and cluster) and writes the
// configuration of a server; Start runs it. When the test ends the node is
// stopped if still running (SIGTERM, then SIGKILL to its process group) and
// its temporary directories are removed; if the test failed, the tail of its
// log (all runs, one file) is written to the test log first.
func NewNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "vault"
	}
	if cfg.Storage == "" {
		cfg.Storage = StorageFile
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "debug"
	}
	if cfg.PluginDir == "" {
		t.Fatalf("vaulttest: NewNode %s: no PluginDir", cfg.Name)
	}
	pluginDir, err := filepath.Abs(cfg.PluginDir)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	bin := VaultBinary(t)
	dir := t.TempDir()
	port := reservePortPair(t)
	n := &Node{
		Vault: &Vault{
			Addr:      "http://127.0.0.1:" + strconv.Itoa(port),
			PluginDir: pluginDir,
			Bin:       bin,
			home:      filepath.Join(dir, "home"),
			http:      &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}},
		},
		Name:        cfg.Name,
		ClusterAddr: "https://127.0.0.1:" + strconv.Itoa(port+1),
		ConfigPath:  filepath.Join(dir, "vault.hcl"),
		DataDir:     filepath.Join(dir, "data"),
		cfg:         cfg,
		port:        port,
	}
	for _, d := range []string{n.home, filepath.Join(n.DataDir, cfg.Storage)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
	}
	if err := n.writeConfig(); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	logPath := filepath.Join(dir, "vault-"+cfg.Name+".log")
	// A placeholder until Start: stopping or reading the logs of a node that
	// never ran is harmless.
	n.proc = &process{name: "vault server " + cfg.Name, logPath: logPath, done: closedChan()}
	t.Cleanup(func() {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p.cmd != nil {
			p.stop(20 * time.Second)
		}
	})
	t.Cleanup(func() {
		if _, err := os.Stat(logPath); err == nil && t.Failed() {
			t.Logf("last 150 lines of the log of vault node %s (%s):\n%s", n.Name, logPath, tail(n.Logs(), 150))
		}
	})
	return n
}

// StartNode is NewNode followed by Start.
func StartNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	n := NewNode(t, cfg)
	n.Start(t)
	return n
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// writeConfig (re)writes the node's configuration file from its NodeConfig.
func (n *Node) writeConfig() error {
	conf, err := renderServerConfig(n.cfg, n, n.port)
	if err != nil {
		return fmt.Errorf("configuring vault node %s: %w", n.Name, err)
	}
	return os.WriteFile(n.ConfigPath, []byte(conf), 0o600)
}

// renderServerConfig writes the HCL configuration of node n.
func renderServerConfig(cfg NodeConfig, n *Node, port int) (string, error) {
	var b strings.Builder
	q := hclString
	fmt.Fprintf(&b, "ui            = false\n")
	fmt.Fprintf(&b, "disable_mlock = true\n")
	fmt.Fprintf(&b, "api_addr      = %s\n", q(n.Addr))
	fmt.Fprintf(&b, "cluster_addr  = %s\n", q(n.ClusterAddr))
	fmt.Fprintf(&b, "plugin_directory = %s\n\n", q(n.PluginDir))
	switch cfg.Storage {
	case StorageFile:
		if len(cfg.RetryJoin) > 0 || cfg.PerformanceMultiplier != 0 {
			return "", errors.New("RetryJoin and PerformanceMultiplier need raft storage")
		}
		fmt.Fprintf(&b, "storage \"file\" {\n  path = %s\n}\n\n", q(filepath.Join(n.DataDir, "file")))
	case StorageRaft:
		fmt.Fprintf(&b, "storage \"raft\" {\n  path    = %s\n  node_id = %s\n", q(filepath.Join(n.DataDir, "raft")), q(cfg.Name))
		if cfg.PerformanceMultiplier != 0 {
			fmt.Fprintf(&b, "  performance_multiplier = %d\n", cfg.PerformanceMultiplier)
		}
		for _, addr := range cfg.RetryJoin {
			fmt.Fprintf(&b, "  retry_join {\n    leader_api_addr = %s\n  }\n", q(addr))
		}
		fmt.Fprintf(&b, "}\n\n")
	default:
		return "", fmt.Errorf("unknown storage %q", cfg.Storage)
	}
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address         = %s\n  cluster_address = %s\n  tls_disable     = true\n}\n",
		q("127.0.0.1:"+strconv.Itoa(port)), q("127.0.0.1:"+strconv.Itoa(port+1)))
	return b.String(), nil
}

// Start starts the server process (again, after Kill or Stop) with the
// node's configuration and storage, and waits until its API answers (it is
// then uninitialised or sealed: see Init and Unseal). Each run appends to
// the node's one log file.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
}

func (n *Node) start() error {
	n.mu.Lock()
	if !n.proc.exited() {
		n.mu.Unlock()
		return fmt.Errorf("vault node %s is already running", n.Name)
	}
	n.starts++
	logPath := n.proc.logPath
	header := fmt.Sprintf("\n===== vaulttest: start %d of node %s at %s =====\n", n.starts, n.Name, time.Now().Format(time.RFC3339Nano))
	if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		_, _ = f.WriteString(header)
		f.Close()
	}
	proc, err := startProcess("vault server "+n.Name, n.Bin,
		[]string{"server", "-config=" + n.ConfigPath, "-log-level=" + n.cfg.LogLevel},
		childEnv(n.home), logPath)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.proc = proc
	n.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if proc.exited() {
			return fmt.Errorf("vault node %s exited at start (%v); output:\n%s", n.Name, proc.exitError(), tail(n.Logs(), 40))
		}
		if _, err := n.Health(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault node %s: API did not answer within 60s; output:\n%s", n.Name, tail(n.Logs(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether the server process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc.cmd != nil && !n.proc.exited()
}

// Starts is how often the node has been started.
func (n *Node) Starts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

// Kill crashes the node: SIGKILL to the server process and to every process
// of its process group (the plugin processes it started), then waits up to
// timeout until they have all ended. Nothing gets a chance to clean up or
// flush, as when a machine loses power. Safe to call from any goroutine,
// e.g. from an emulator fault hook; it does not use the testing.TB.
func (n *Node) Kill(timeout time.Duration) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return fmt.Errorf("vault node %s is not running", n.Name)
	}
	// Find the plugins before the server dies: orphans get a new parent.
	plugins, _ := n.PluginPIDs()
	pid := p.cmd.Process.Pid
	killGroup(pid)
	_ = p.cmd.Process.Kill()
	// A plugin that left the server's process group (none is known to).
	_ = KillProcesses(plugins, timeout)
	select {
	case <-p.done:
	case <-time.After(timeout):
		return fmt.Errorf("vault node %s (pid %d) still running %v after SIGKILL", n.Name, pid, timeout)
	}
	return waitGone(plugins, timeout)
}

// Stop shuts the node down gracefully (SIGTERM, then SIGKILL after 20s).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p.cmd != nil {
		p.stop(20 * time.Second)
	}
}

// Health returns the status of GET /v1/sys/health: HealthActive,
// HealthStandby, HealthSealed, HealthUninitialized (or another documented
// one), or an error when the API does not answer.
func (n *Node) Health() (int, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Get(n.Addr + "/v1/sys/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WaitHealth polls Health until it returns one of want, and returns it. It
// fails the test after timeout, or at once if the process exits.
func (n *Node) WaitHealth(t testing.TB, timeout time.Duration, want ...int) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		code, err := n.Health()
		if err == nil {
			for _, w := range want {
				if code == w {
					return code
				}
			}
			last = strconv.Itoa(code)
		} else {
			last = err.Error()
		}
		if !n.Running() {
			t.Fatalf("vaulttest: vault node %s is not running (waiting for health %v); output:\n%s", n.Name, want, tail(n.Logs(), 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: vault node %s: health not in %v after %v (last: %s)", n.Name, want, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Init runs `vault operator init -key-shares=1 -key-threshold=1` and returns
// the one unseal key and the root token, which it also stores in RootToken.
func (n *Node) Init(t testing.TB) (unsealKey, rootToken string) {
	t.Helper()
	out := n.MustCLIJSON(t, "", "operator", "init", "-key-shares=1", "-key-threshold=1")
	keys, _ := out["unseal_keys_b64"].([]any)
	root, _ := out["root_token"].(string)
	if len(keys) != 1 || root == "" {
		t.Fatalf("vaulttest: operator init on %s: unexpected answer with fields %v", n.Name, mapKeys(out))
	}
	key, _ := keys[0].(string)
	if key == "" {
		t.Fatalf("vaulttest: operator init on %s: empty unseal key", n.Name)
	}
	n.RootToken = root
	return key, root
}

// Unseal runs `vault operator unseal KEY` until the node reports unsealed
// (a raft node that joins through retry_join keeps the key until it has
// joined, then unseals), and fails the test after timeout.
func (n *Node) Unseal(t testing.TB, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := n.CLIJSON(t, "", "operator", "unseal", key)
		if err == nil {
			if sealed, ok := out["sealed"].(bool); ok && !sealed {
				return
			}
		}
		// Give a joining node time before offering the key again.
		for wait := time.Now().Add(3 * time.Second); time.Now().Before(wait); {
			if code, err := n.Health(); err == nil && code != HealthSealed && code != HealthUninitialized {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: vault node %s still sealed after %v (last unseal: %v)", n.Name, timeout, err)
		}
	}
}

func mapKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
