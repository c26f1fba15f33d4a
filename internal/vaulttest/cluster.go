package vaulttest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Size is the number of nodes; default 3.
	Size int
	// PluginBinary is the plugin binary (PluginName) to install: it is
	// copied into every node's own plugin_directory, as an operator would.
	PluginBinary string
	// PerformanceMultiplier is raft's performance_multiplier on every node
	// (0: Vault's default, 5).
	PerformanceMultiplier int
	// LogLevel of every node; default "debug".
	LogLevel string
	// NoVoterWait makes StartCluster return once every node is unsealed and
	// follows the active node, without waiting for autopilot to promote the
	// joined nodes to voters (Cluster.WaitVoters does that): a test can set
	// things up meanwhile. Until then losing the active node loses quorum.
	NoVoterWait bool
	// ServerStabilizationTime is autopilot's server_stabilization_time, set
	// before the other nodes join: how long a joined node must be healthy
	// before it is promoted to voter. 0 leaves Vault's default (10s).
	ServerStabilizationTime time.Duration
}

// Cluster is a Vault cluster on integrated storage (raft), all on loopback:
// one API and one cluster port per node, each node with its own storage and
// plugin directory, every node joining the others through retry_join.
type Cluster struct {
	Nodes []*Node
	// UnsealKey is the one unseal key (key shares = threshold = 1).
	UnsealKey string
	// RootToken is the initial root token, also set on every node.
	RootToken string
	// PluginSHA256 is the SHA-256 of the plugin binary on every node.
	PluginSHA256 string
}

// StartCluster starts opts.Size raft nodes, initialises the first, unseals
// all of them (the others join it) and waits until every node is a raft
// voter (unless opts.NoVoterWait) and one is active, followed by all others.
// Every node is killed when the test ends.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 3
	}
	if opts.PluginBinary == "" {
		t.Fatalf("vaulttest: StartCluster: no PluginBinary")
	}
	c := &Cluster{}
	for i := 0; i < opts.Size; i++ {
		dir := t.TempDir()
		sum, err := copyExecutable(opts.PluginBinary, filepath.Join(dir, PluginName))
		if err != nil {
			t.Fatalf("vaulttest: installing the plugin for node %d: %v", i, err)
		}
		if c.PluginSHA256 == "" {
			c.PluginSHA256 = sum
		} else if sum != c.PluginSHA256 {
			t.Fatalf("vaulttest: plugin copies differ: %s vs %s", sum, c.PluginSHA256)
		}
		c.Nodes = append(c.Nodes, NewNode(t, NodeConfig{
			Name:                  fmt.Sprintf("node%d", i+1),
			Storage:               StorageRaft,
			PluginDir:             dir,
			PerformanceMultiplier: opts.PerformanceMultiplier,
			LogLevel:              opts.LogLevel,
		}))
	}
	// Now that every address is known: each node joins any of the others.
	for _, n := range c.Nodes {
		for _, other := range c.Nodes {
			if other != n {
				n.cfg.RetryJoin = append(n.cfg.RetryJoin, other.Addr)
			}
		}
		if err := n.writeConfig(); err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
	}
	start := time.Now()
	for _, n := range c.Nodes {
		n.Start(t)
	}
	first := c.Nodes[0]
	c.UnsealKey, c.RootToken = first.Init(t)
	first.Unseal(t, c.UnsealKey, time.Minute)
	first.WaitHealth(t, time.Minute, HealthActive)
	t.Logf("vaulttest: cluster: %s initialised and active after %v", first.Name, time.Since(start).Round(time.Millisecond))
	if opts.ServerStabilizationTime > 0 {
		r := first.Do(t, c.RootToken, http.MethodPost, "sys/storage/raft/autopilot/configuration", map[string]any{
			"server_stabilization_time": int(opts.ServerStabilizationTime / time.Second),
		})
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
			t.Fatalf("vaulttest: setting autopilot's server_stabilization_time: status %d: %v", r.Status, r.Errors)
		}
	}
	for _, n := range c.Nodes[1:] {
		n.RootToken = c.RootToken
		n.Unseal(t, c.UnsealKey, 90*time.Second)
		t.Logf("vaulttest: cluster: %s joined and unsealed after %v", n.Name, time.Since(start).Round(time.Millisecond))
	}
	if !opts.NoVoterWait {
		c.WaitVoters(t, opts.Size, 90*time.Second)
		t.Logf("vaulttest: cluster: %d voters after %v", opts.Size, time.Since(start).Round(time.Millisecond))
	}
	c.Active(t, time.Minute)
	return c
}

// copyExecutable copies src to dst (mode 0755) and returns dst's SHA-256.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return FileSHA256(dst)
}

// Running returns the nodes whose server process is running.
func (c *Cluster) Running() []*Node {
	var live []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			live = append(live, n)
		}
	}
	return live
}

// raftServer is one entry of sys/storage/raft/configuration.
type raftServer struct {
	NodeID  string
	Address string
	Leader  bool
	Voter   bool
}

// RaftServers reads the raft configuration through node n.
func (c *Cluster) RaftServers(n *Node) ([]raftServer, error) {
	r, err := n.TryDo(c.RootToken, http.MethodGet, "sys/storage/raft/configuration", nil, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("sys/storage/raft/configuration on %s: status %d: %v", n.Name, r.Status, r.Errors)
	}
	cfg, _ := r.Data["config"].(map[string]any)
	list, _ := cfg["servers"].([]any)
	var servers []raftServer
	for _, x := range list {
		m, _ := x.(map[string]any)
		s := raftServer{}
		s.NodeID, _ = m["node_id"].(string)
		s.Address, _ = m["address"].(string)
		s.Leader, _ = m["leader"].(bool)
		s.Voter, _ = m["voter"].(bool)
		servers = append(servers, s)
	}
	return servers, nil
}

// WaitVoters waits until the raft configuration, read through the active
// node, holds want voters, and fails the test after timeout.
func (c *Cluster) WaitVoters(t testing.TB, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		for _, n := range c.Running() {
			if code, err := n.Health(); err != nil || code != HealthActive {
				continue
			}
			servers, err := c.RaftServers(n)
			if err != nil {
				last = err.Error()
				continue
			}
			voters := 0
			var desc []string
			for _, s := range servers {
				if s.Voter {
					voters++
				}
				desc = append(desc, fmt.Sprintf("%s(voter=%v leader=%v)", s.NodeID, s.Voter, s.Leader))
			}
			last = strings.Join(desc, " ")
			if voters >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: the cluster has not %d raft voters after %v; last configuration: %s", want, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Active waits until exactly one running node is active and every other
// running node is an unsealed standby that names it as leader (so that
// standbys forward requests to it), and returns it. It fails the test after
// timeout, describing what each node reported last.
func (c *Cluster) Active(t testing.TB, timeout time.Duration) *Node {
	t.Helper()
	n, err := c.waitActive(timeout)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return n
}

func (c *Cluster) waitActive(timeout time.Duration) (*Node, error) {
	deadline := time.Now().Add(timeout)
	var state []string
	for {
		state = state[:0]
		var active []*Node
		live := c.Running()
		for _, n := range live {
			code, err := n.Health()
			switch {
			case err != nil:
				state = append(state, fmt.Sprintf("%s: %v", n.Name, err))
			default:
				state = append(state, fmt.Sprintf("%s: health %d", n.Name, code))
				if code == HealthActive {
					active = append(active, n)
				}
			}
		}
		if len(active) == 1 && c.agreeOnLeader(live, active[0], &state) {
			return active[0], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no single active node that every running node follows after %v: %s", timeout, strings.Join(state, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agreeOnLeader reports whether every node of live names leader's API
// address in sys/leader.
func (c *Cluster) agreeOnLeader(live []*Node, leader *Node, state *[]string) bool {
	for _, n := range live {
		r, err := n.TryDo("", http.MethodGet, "sys/leader", nil, 5*time.Second)
		if err != nil || r.Status != http.StatusOK {
			*state = append(*state, fmt.Sprintf("%s: sys/leader: %v", n.Name, err))
			return false
		}
		if addr, _ := r.Body["leader_address"].(string); addr != leader.Addr {
			*state = append(*state, fmt.Sprintf("%s follows %q, not %s", n.Name, addr, leader.Name))
			return false
		}
	}
	return true
}

// ActiveNow returns the running node that reports itself active right now,
// or nil: one pass, no waiting, no testing.TB (fault hooks may call it).
func (c *Cluster) ActiveNow() *Node {
	for _, n := range c.Running() {
		if code, err := n.Health(); err == nil && code == HealthActive {
			return n
		}
	}
	return nil
}

// NodeByAddr returns the node whose API address is addr, or nil.
func (c *Cluster) NodeByAddr(addr string) *Node {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}
