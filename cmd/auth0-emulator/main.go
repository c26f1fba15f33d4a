// Command auth0-emulator serves the Auth0 Management API emulator (package
// emulator) on a local address, for development and integration tests.
//
//	auth0-emulator -addr 127.0.0.1:8091 -rate-limit 10 -seed clients.json
//
// The seed file looks like:
//
//	{"clients":[{"client_id":"...","client_secret":"...","name":"...",
//	  "grants":{"management":["read:clients","read:client_keys","update:client_keys"]}}]}
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

type seedFile struct {
	Clients []struct {
		ClientID     string              `json:"client_id"`
		ClientSecret string              `json:"client_secret"`
		Name         string              `json:"name"`
		Grants       map[string][]string `json:"grants"`
	} `json:"clients"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "auth0-emulator:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	rateLimit := flag.Int("rate-limit", 0, "max /api/v2 requests per second (0 = unlimited)")
	seed := flag.String("seed", "", "JSON file with the clients to create")
	lifetime := flag.Duration("token-lifetime", 24*time.Hour, "access token lifetime")
	audience := flag.String("audience", "", `Management API audience (default "https://<Host>/api/v2/")`)
	flag.Parse()

	srv := emulator.New(emulator.Options{RateLimit: *rateLimit, TokenLifetime: *lifetime, Audience: *audience})
	n := 0
	if *seed != "" {
		raw, err := os.ReadFile(*seed)
		if err != nil {
			return err
		}
		var sf seedFile
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sf); err != nil {
			return fmt.Errorf("seed %s: %w", *seed, err)
		}
		for _, c := range sf.Clients {
			srv.AddClient(emulator.Client{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Name: c.Name, Grants: c.Grants})
		}
		n = len(sf.Clients)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Printf("auth0-emulator listening on http://%s (%d seeded clients)\n", ln.Addr(), n)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
