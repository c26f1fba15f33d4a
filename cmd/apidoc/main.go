// Command apidoc writes docs/API.md, the API reference, from the engine's OpenAPI document
// (make docs).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	auth0 "github.com/vault-plugin-auth0/vault-plugin-auth0"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/apidoc"
)

func main() {
	out := flag.String("o", "docs/API.md", "file to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "apidoc:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	md, err := apidoc.Generate(context.Background(), auth0.Factory)
	if err != nil {
		return err
	}
	// Replace the file whole, so an interrupted run leaves the old one.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".API.md-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(md); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
