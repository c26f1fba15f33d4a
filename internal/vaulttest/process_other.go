//go:build !unix

package vaulttest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}
