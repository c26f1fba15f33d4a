//go:build !unix

package vaulttest

// lockFile is a no-op where flock is unavailable; builds are then only
// serialised within one process.
func lockFile(string) (func(), error) { return func() {}, nil }

// tryLockFile always succeeds where flock is unavailable: ports are then only
// reserved within one process.
func tryLockFile(string) bool { return true }
