//go:build tools

// Package tools pins the MPL-licensed Vault release that the tests and `make dev` run.
// It lives in its own module so Vault's dependency graph never leaks into the plugin's.
package tools

import _ "github.com/hashicorp/vault"
