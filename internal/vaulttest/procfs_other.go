//go:build !linux

package vaulttest

import (
	"errors"
	"time"
)

var errNoProcfs = errors.New("vaulttest: finding plugin processes needs Linux /proc")

// PID is the process id of the server process; 0 for a Node that was
// never started.
func (v *Vault) PID() int {
	if v.proc == nil || v.proc.cmd == nil {
		return 0
	}
	return v.proc.cmd.Process.Pid
}

// PluginPIDs needs /proc; elsewhere it fails.
func (v *Vault) PluginPIDs() ([]int, error) { return nil, errNoProcfs }

// KillProcesses needs /proc; elsewhere it fails.
func KillProcesses([]int, time.Duration) error { return errNoProcfs }

// KillPlugins needs /proc; elsewhere it fails.
func (v *Vault) KillPlugins(time.Duration) ([]int, error) { return nil, errNoProcfs }

func waitGone(pids []int, _ time.Duration) error {
	if len(pids) == 0 {
		return nil
	}
	return errNoProcfs
}
