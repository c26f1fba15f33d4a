package vaulttest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// A node's ports once came from the kernel's ephemeral range, where any outgoing connection
// on the machine could take one before Vault bound it: an active node failed to listen on
// its cluster port, and its standbys never became raft voters (TestHAFailover, under load).
// Reserved ports are now outside that range, and held against other processes.
func TestReservedPortsAvoidEphemeralRangeAndOtherProcesses(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatalf("this test reads Linux's ephemeral port range: %v", err)
	}
	f := strings.Fields(string(raw))
	low, _ := strconv.Atoi(f[0])
	high, _ := strconv.Atoi(f[1])
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		p := reservePortPair(t)
		for _, port := range []int{p, p + 1} {
			if port >= low && port <= high {
				t.Fatalf("port %d is in the kernel's ephemeral range %d-%d", port, low, high)
			}
			if seen[port] {
				t.Fatalf("port %d reserved twice", port)
			}
			seen[port] = true
			// Another process's lock is another open file description: the same as here.
			if tryLockFile(portLockPath(port)) {
				t.Fatalf("port %d's lock could be taken again: another process could reserve it", port)
			}
		}
	}
}
