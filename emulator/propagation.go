package emulator

import (
	"crypto/subtle"
	"time"
)

// This file models the propagation of a new client secret. Auth0 documents
// that after a rotation it may take up to 30 seconds until the new secret is
// accepted everywhere: meanwhile a token request can land on a node that
// still knows the old secret, or on one that already has the new one.
//
// The emulator keeps, per client, the secrets replaced less than
// PropagationDelay ago. Each /oauth/token request picks one state at random,
// uniformly, among the current secret and those still propagating (one
// replaced secret: old or new, half the time each), and authenticates
// against that state only.
//
// A change of the credentials attached to private_key_jwt or
// self_signed_tls_client_auth (including a switch between them and the
// secret) propagates the same way, with the same delay and randomness: see
// visibleAuthLocked in authmethods.go.

// replacedSecret is a secret that another replaced at a given time.
type replacedSecret struct {
	secret     string
	replacedAt time.Time
}

// SetPropagationDelay changes Options.PropagationDelay. It applies to
// secrets already replaced too: a shorter delay ends their propagation
// sooner, 0 ends it at once.
func (s *Server) SetPropagationDelay(d time.Duration) {
	s.mu.Lock()
	s.propagation = d
	s.mu.Unlock()
}

// replaceSecretLocked sets rec's secret, remembering the old one while it
// propagates. s.mu must be held.
func (s *Server) replaceSecretLocked(rec *clientRecord, secret string) {
	if secret == rec.secret {
		return
	}
	if s.propagation > 0 {
		rec.previous = append(rec.previous, replacedSecret{secret: rec.secret, replacedAt: s.now()})
	}
	rec.secret = secret
}

// secretAcceptedLocked reports whether secret authenticates rec for a token
// request at now, as the randomly chosen state of propagation sees it. s.mu
// must be held.
func (s *Server) secretAcceptedLocked(rec *clientRecord, secret string, now time.Time) bool {
	if secret == "" {
		return false
	}
	// Forget what has propagated. previous is ordered by replacedAt, so
	// what is left is a suffix.
	i := 0
	for i < len(rec.previous) && (s.propagation <= 0 || !now.Before(rec.previous[i].replacedAt.Add(s.propagation))) {
		i++
	}
	if i > 0 {
		rec.previous = append(rec.previous[:0], rec.previous[i:]...)
	}
	visible := rec.secret
	if n := len(rec.previous); n > 0 {
		if k := s.rng.IntN(n + 1); k < n {
			visible = rec.previous[k].secret
		}
	}
	return subtle.ConstantTimeCompare([]byte(visible), []byte(secret)) == 1
}
