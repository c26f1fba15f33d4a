//go:build tools

// Package tools pins govulncheck and the vulnerability database sources (x/vulndb, whose
// data/osv and cmd/indexdb build the offline database) for scripts/vulncheck.sh.
package tools

import (
	_ "golang.org/x/vuln/cmd/govulncheck"
	_ "golang.org/x/vulndb/cmd/indexdb"
)
