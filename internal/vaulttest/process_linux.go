package vaulttest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig: a test binary killed by -timeout does not run its cleanups;
	// SIGTERM still lets Vault stop its plugins before exiting.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
