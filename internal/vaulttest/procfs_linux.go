package vaulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file finds and kills the processes of a Vault server and of the
// plugins it runs, through /proc, for crash tests.

// PID is the process id of the server process (after a Node restart, of
// the current one); 0 for a Node that was never started.
func (v *Vault) PID() int {
	if v.proc == nil || v.proc.cmd == nil {
		return 0
	}
	return v.proc.cmd.Process.Pid
}

// PluginPIDs returns the process ids of the running children of the server
// whose executable lies in its plugin directory: the plugin processes,
// whatever version (file name) they run. A multiplexed plugin runs one
// process for all its mounts; while Vault replaces one there may briefly be
// two.
func (v *Vault) PluginPIDs() ([]int, error) {
	pid := v.PID()
	if pid == 0 {
		return nil, fmt.Errorf("vault server at %s was never started", v.Addr)
	}
	return childrenRunning(pid, v.PluginDir)
}

// childrenRunning lists the live (not zombie) children of parent whose
// executable lies in dir.
func childrenRunning(parent int, dir string) ([]int, error) {
	// /proc/PID/exe names the file with symbolic links resolved.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != parent || st.state == 'Z' {
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		// A binary replaced on disk while running reads as "path (deleted)".
		if filepath.Dir(strings.TrimSuffix(target, " (deleted)")) == filepath.Clean(dir) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

type procStat struct {
	state byte
	ppid  int
}

// readStat parses /proc/PID/stat: "pid (comm) state ppid ...", where comm
// may itself hold spaces and parentheses.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 2 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	return procStat{state: fields[0][0], ppid: ppid}, nil
}

// processGone reports whether pid has ended: it no longer exists, or it is
// a zombie waiting to be reaped (it runs no code any more either way).
func processGone(pid int) bool {
	st, err := readStat(pid)
	return err != nil || st.state == 'Z'
}

// KillProcesses sends SIGKILL to every pid and waits up to timeout until
// all of them have ended.
func KillProcesses(pids []int, timeout time.Duration) error {
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill -9 %d: %w", pid, err)
		}
	}
	return waitGone(pids, timeout)
}

func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for !processGone(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still running %v after SIGKILL", pid, timeout)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// KillPlugins sends SIGKILL to the server's plugin processes (see
// PluginPIDs) and waits until they have ended. It returns their pids; it is
// an error if there was none. The server itself keeps running and starts
// the plugin again when it next needs it.
func (v *Vault) KillPlugins(timeout time.Duration) ([]int, error) {
	pids, err := v.PluginPIDs()
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no running %s process under vault server %d", PluginName, v.PID())
	}
	return pids, KillProcesses(pids, timeout)
}
