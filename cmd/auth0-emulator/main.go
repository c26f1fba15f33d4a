// Command auth0-emulator serves the Auth0 Management API emulator (package
// emulator) on a local address, for development and integration tests.
//
//	auth0-emulator -addr 127.0.0.1:8091 -rate-limit 10 -seed clients.json
//	auth0-emulator -plan free -token-rate-limit 5 -propagation-delay 30s -seed clients.json
//
// -plan sets the /api/v2 token bucket to an Auth0 plan's ("free": burst 2,
// 2/s; "essentials", "professional": burst 10, 2.5/s; "enterprise": burst
// 50, 16/s); -rate-limit, when set, takes precedence. -propagation-delay
// makes a replaced secret keep working at random, half the time, for that
// long after a rotation, as Auth0 may; -random-seed makes that repeatable.
// -cname-api-key is the custom domain API key an mTLS edge must send (as the
// cname-api-key header) with the client certificates it forwards to
// /oauth/token for self_signed_tls_client_auth; "" refuses every forwarded
// certificate.
//
// The seed file looks like:
//
//	{"clients":[{"client_id":"...","client_secret":"...","name":"...",
//	  "grants":{"management":["read:clients","read:client_keys","update:client_keys"]}}]}
//
// A client may also be seeded with private_key_jwt credentials (at most two;
// the PEM of an RSA public key or certificate of at least 2048 bits, alg
// RS256, RS384 or PS256, expires_at RFC 3339, all but pem optional) and, with
// "private_key_jwt": true, be on private_key_jwt with all of them attached:
//
//	{"clients":[{"client_id":"...","name":"...","grants":{...},
//	  "credentials":[{"name":"key 1","pem":"-----BEGIN PUBLIC KEY-----\n...","alg":"RS256"}],
//	  "private_key_jwt":true}]}
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
		Credentials  []struct {
			Name      string    `json:"name"`
			PEM       string    `json:"pem"`
			Alg       string    `json:"alg"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"credentials"`
		PrivateKeyJWT bool `json:"private_key_jwt"`
	} `json:"clients"`
}

// defaultCNAMEAPIKey is the -cname-api-key of development setups: not a
// secret, since the emulator guards nothing real.
const defaultCNAMEAPIKey = "dev-cname-api-key"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "auth0-emulator:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	rateLimit := flag.Int("rate-limit", 0, "max /api/v2 requests per second, burst the same (0 = unlimited, or -plan)")
	plan := flag.String("plan", "", `Auth0 plan whose /api/v2 rate limit to apply: "free", "essentials", "professional" or "enterprise"`)
	tokenRateLimit := flag.Float64("token-rate-limit", 0, "max /oauth/token requests per second (0 = unlimited)")
	propagation := flag.Duration("propagation-delay", 0, "how long after a secret change the old and new secrets both work at random, e.g. 30s (0 = switch at once)")
	randomSeed := flag.Uint64("random-seed", 0, "seed of the -propagation-delay randomness (0 = random)")
	seed := flag.String("seed", "", "JSON file with the clients to create")
	lifetime := flag.Duration("token-lifetime", 24*time.Hour, "access token lifetime")
	audience := flag.String("audience", "", `Management API audience (default "https://<Host>/api/v2/")`)
	cnameAPIKey := flag.String("cname-api-key", defaultCNAMEAPIKey, `custom domain API key an mTLS edge sends as the cname-api-key header ("" = no mTLS)`)
	flag.Parse()
	if *plan != "" {
		if _, _, ok := emulator.PlanLimits(*plan); !ok {
			return fmt.Errorf(`unknown -plan %q (want "free", "essentials", "professional" or "enterprise")`, *plan)
		}
	}
	if *rateLimit < 0 || *tokenRateLimit < 0 || *propagation < 0 {
		return errors.New("-rate-limit, -token-rate-limit and -propagation-delay must not be negative")
	}

	srv := emulator.New(emulator.Options{
		RateLimit:        *rateLimit,
		Plan:             *plan,
		TokenRateLimit:   *tokenRateLimit,
		PropagationDelay: *propagation,
		Seed:             *randomSeed,
		TokenLifetime:    *lifetime,
		Audience:         *audience,
		CNAMEAPIKey:      *cnameAPIKey,
	})
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
			added := srv.AddClient(emulator.Client{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Name: c.Name, Grants: c.Grants})
			var ids []string
			for i, cr := range c.Credentials {
				info, err := srv.AddCredential(added.ClientID, emulator.CredentialSpec{
					Name: cr.Name, PEM: cr.PEM, Algorithm: cr.Alg, ExpiresAt: cr.ExpiresAt,
				})
				if err != nil {
					return fmt.Errorf("seed %s: client %s: credential %d: %w", *seed, added.ClientID, i, err)
				}
				ids = append(ids, info.ID)
			}
			if c.PrivateKeyJWT {
				if err := srv.AttachCredentials(added.ClientID, ids...); err != nil {
					return fmt.Errorf("seed %s: client %s: %w", *seed, added.ClientID, err)
				}
			}
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
