package auth0

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// The simulation's root rotations: the mount's own Management API credentials, rotated by
// config/rotate-root and by root_rotation_period, under faults aimed at the Management
// API application's requests and crashes (invariant 19, sim_test.go).

// Root modes: the mount authenticates with its client secret, or (after the one-step
// migration at the start of the run) with a private_key_jwt key of its own.
const (
	rootModeSecret = "client_secret"
	rootModeKey    = "private_key_jwt"
)

// covRoot counts the root rotations a run went through, by how they ended.
const covRoot = "root rotations"

// actionRoot is what a crash interrupted: a root rotation.
const actionRoot = "a root rotation"

// rootSecretFaults and rootKeyFaults are the faults a root step arms for the Management
// API application's requests, in the order the steps take them in turn: the first of
// each is served by every rotation of its mode. A "root token" fault is the application's
// next login (the new secret's or key's proof, or a token for the rotation's calls).
var (
	rootSecretFaults = []simFaultSpec{
		{"root patch", emulator.BeforeApply, emulator.Fault{Status: 500}, 1},
		{"root token", emulator.BeforeApply, emulator.Fault{Status: 401, Error: "access_denied", Message: "Unauthorized"}, 1},
		{"root patch", emulator.AfterApply, emulator.Fault{Drop: true}, 1},
		{"root patch", emulator.BeforeApply, emulator.Fault{Status: 429}, 1},
		{"root patch", emulator.AfterApply, emulator.Fault{Status: 500}, 1},
		{"root token", emulator.BeforeApply, emulator.Fault{Status: 503}, 1},
	}
	rootKeyFaults = []simFaultSpec{
		{"root create", emulator.BeforeApply, emulator.Fault{Status: 500}, 1},
		{"root create", emulator.AfterApply, emulator.Fault{Drop: true}, 1},
		{"root attach", emulator.BeforeApply, emulator.Fault{Status: 503}, 1},
		{"root attach", emulator.AfterApply, emulator.Fault{Drop: true}, 1},
		{"root token", emulator.BeforeApply, emulator.Fault{Status: 401, Error: "invalid_client", Message: "Invalid client assertion"}, 1},
		{"root list", emulator.BeforeApply, emulator.Fault{Status: 500}, 1},
		{"root methods", emulator.BeforeApply, emulator.Fault{Status: 429}, 1},
		{"root delete", emulator.AfterApply, emulator.Fault{Status: 500}, 1},
	}
)

// rootRequestKind classifies a request about the Management API application for the
// fault hook; "other" for one the engine has no reason to send.
func (s *sim) rootRequestKind(r *http.Request) string {
	if r.URL.Path == "/oauth/token" {
		return "root token"
	}
	k := "other"
	switch {
	case s.rootMode == rootModeKey:
		k = keyRequestKind(r)
	case r.Method == http.MethodPatch:
		k = "patch"
	case r.Method == http.MethodGet:
		k = "methods" // a read of the application
	}
	if k == "other" {
		return k
	}
	return "root " + k
}

// setupRoot configures the run's root rotations: every run rotates the Management API
// credentials on a schedule, and a third of the runs first move the mount to its own key.
func (s *sim) setupRoot() {
	s.rootMode = rootModeSecret
	if s.rng.IntN(3) == 0 {
		s.rootMode = rootModeKey
	}
	period := []string{"12h", "20h"}[s.rng.IntN(2)]
	data := map[string]interface{}{"root_rotation_period": period}
	if s.rootMode == rootModeKey {
		data["credential_type"] = "private_key_jwt"
		data["root_overlap_period"] = []string{"0s", "1h", "6h"}[s.rng.IntN(3)]
	}
	s.mustOK("config", data)
	s.rootLast = s.storedConfig().LastRootRotation
}

func (s *sim) storedConfig() *model.ConfigEntry {
	cfg, err := model.LoadConfig(s.ctx, s.base)
	if err != nil || cfg == nil {
		s.fail("invariant 19: reading config from storage: %v (found %v)", err, cfg != nil)
	}
	return cfg
}

// stepRootRotate is config/rotate-root with a fault armed for the application's requests
// (the run's faults of its mode in turn), every third one crashing at a storage operation.
func (s *sim) stepRootRotate() string {
	s.rootSteps++
	crashAt := 0
	if s.rootSteps%3 == 0 {
		crashAt = 1 + s.rng.IntN(6)
	}
	return s.rootRotate(true, crashAt)
}

// rootRotate runs config/rotate-root, with the next of the mode's faults armed if fault,
// and a crash at storage operation crashAt if it is not 0.
func (s *sim) rootRotate(fault bool, crashAt int) string {
	desc := "rotate-root"
	var armed simFault
	if fault {
		table := rootSecretFaults
		if s.rootMode == rootModeKey {
			table = rootKeyFaults
		}
		spec := table[0]
		for _, f := range table[1:] {
			if s.rootFaultTries[f.class()] < s.rootFaultTries[spec.class()] {
				spec = f
			}
		}
		s.rootFaultTries[spec.class()]++
		s.mu.Lock()
		armed = s.armFault(spec, testMgmtID)
		s.planned = append(s.planned, armed)
		s.mu.Unlock()
		desc += ", armed " + armed.desc
	}
	if crashAt > 0 {
		s.store.armCrash("", "", crashAt, s.rng.IntN(2) == 0)
	}
	data := map[string]interface{}{}
	if s.rootMode == rootModeKey && s.rng.IntN(4) == 0 {
		data["end_overlap"] = true
		desc += ", end_overlap"
	}
	s.rootStepRan = true
	resp, err := s.request(logical.UpdateOperation, "config/rotate-root", data)
	s.counts["rotate-root"]++
	if err == nil && resp != nil && !resp.IsError() {
		s.cov.add(covRoot, s.rootMode+": rotate-root answered OK")
	}
	desc += ": " + outcome(resp, err)
	// A fault this rotation did not meet is dropped: it was aimed at the rotation.
	s.mu.Lock()
	s.planned = slices.DeleteFunc(s.planned, func(p simFault) bool { return fault && p.id == armed.id })
	s.mu.Unlock()
	if crashAt > 0 {
		crashed, where := s.disarmCrash(actionRoot)
		if crashed {
			desc += fmt.Sprintf("; crash at storage op %d, %s; restarted", crashAt, where)
		} else {
			desc += fmt.Sprintf("; crash not reached (armed at op %d, %s)", crashAt, where)
		}
	}
	return desc
}

// checkRoot checks invariant 19 after a step, and counts the root rotations committed.
func (s *sim) checkRoot() {
	cfg := s.storedConfig()
	for _, secret := range []string{cfg.ClientSecret, cfg.PendingClientSecret} {
		if secret != "" {
			s.logs.addSecret(secret) // invariant 4 covers the mount's own secrets too
		}
	}
	if !cfg.LastRootRotation.Equal(s.rootLast) {
		s.rootLast = cfg.LastRootRotation
		if s.rootStepRan {
			s.cov.add(covRoot, s.rootMode+": committed during rotate-root")
		} else {
			s.cov.add(covRoot, s.rootMode+": committed by the scheduler, or at a start")
		}
	}
	s.rootStepRan = false
	if s.rootMode == rootModeSecret {
		auth0, _ := s.emu.ClientSecret(testMgmtID)
		if auth0 != cfg.ClientSecret && auth0 != cfg.PendingClientSecret {
			s.fail("invariant 19: Auth0 holds a Management API secret that config has neither as client_secret nor as pending (pending set: %v): the mount lost its own credentials", cfg.PendingClientSecret != "")
		}
		return
	}
	known := rootKeyIDs(cfg)
	_, attached, _ := s.emu.Credentials(testMgmtID)
	for _, id := range attached {
		if !known[id] {
			s.fail("invariant 19: credential %s is attached to the Management API application, and config knows it as neither its key, its previous key nor its pending key (%v)", id, known)
		}
	}
	if rk := cfg.RootKey; rk != nil && rk.Current() != nil && !slices.Contains(attached, rk.Current().KeyID) {
		s.fail("invariant 19: config's key %s (version %d) is not attached to the Management API application (attached %v)", rk.Current().KeyID, rk.Current().Version, attached)
	}
	if len(attached) > 2 {
		s.fail("invariant 19: %d credentials attached to the Management API application, Auth0 allows 2", len(attached))
	}
}

// rootKeyIDs are the Auth0 credentials config knows for its key: the current one, the
// previous ones during the overlap, the pending one.
func rootKeyIDs(cfg *model.ConfigEntry) map[string]bool {
	known := map[string]bool{}
	rk := cfg.RootKey
	if rk == nil {
		return known
	}
	if cur := rk.Current(); cur != nil {
		known[cur.KeyID] = true
	}
	if ov := rk.Overlap; ov != nil {
		for _, id := range ov.CredentialIDs {
			known[id] = true
		}
	}
	if pk := rk.PendingKey; pk != nil && pk.CredentialID != "" {
		known[pk.CredentialID] = true
	}
	return known
}

// rootUnsettled reports why the root credentials are not settled yet, "" once they are:
// a rotation in flight, a failure, or an overlap past its end.
func (s *sim) rootUnsettled() string {
	cfg := s.storedConfig()
	switch {
	case cfg.PendingClientSecret != "":
		return "a root secret pending"
	case cfg.RootFailures.LastFailure != nil:
		return "a failed root rotation"
	case s.rootMode == rootModeKey && (cfg.RootKey == nil || keyUnsettled(cfg.RootKey, s.clock.Now())):
		return "the mount's key pending or its overlap over"
	}
	return ""
}

// completeRootCoverage runs what the run's random steps left out of the root classes
// every run must hit: a rotation committed by each trigger, a fault served, a crash.
func (s *sim) completeRootCoverage() {
	s.foldRootFaults()
	for try := 0; try < 4 && s.cov[covRoot][s.rootMode+": a fault served"] == 0; try++ {
		s.step++
		s.record("coverage: " + s.rootRotate(true, 0))
		s.foldRootFaults()
		s.check()
	}
	for try := 0; try < 3 && s.cov[covCrashes]["during "+actionRoot] == 0; try++ {
		s.step++
		s.record("coverage: " + s.rootRotate(false, 1))
		s.check()
	}
	for try := 0; try < 4 && s.cov[covRoot][s.rootMode+": rotate-root answered OK"] == 0; try++ {
		s.step++
		s.clock.Advance(time.Hour) // past a failed rotation's backoff, a pending key's wait
		s.record("coverage: " + s.rootRotate(false, 0))
		s.check()
	}
	// Toward the next scheduled root rotation, an hour at most at a time: no step is
	// longer than the random ones (certificates are renewed in time for those).
	for try := 0; try < 48 && s.cov[covRoot][s.rootMode+": committed by the scheduler, or at a start"] == 0; try++ {
		s.step++
		d := time.Hour
		if next := s.storedConfig().NextRootRotation; next.After(s.clock.Now()) && next.Sub(s.clock.Now()) < d {
			d = next.Sub(s.clock.Now()) + time.Second
		}
		s.clock.Advance(d)
		s.record(fmt.Sprintf("coverage: advance %s toward the next root rotation, %d jobs", d, s.runDue()))
		s.check()
	}
}

// foldRootFaults counts, in covRoot, whether a fault aimed at the root credentials was
// served.
func (s *sim) foldRootFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, table := range [][]simFaultSpec{rootSecretFaults, rootKeyFaults} {
		for _, f := range table {
			if s.faultCov[f.class()] > 0 && s.cov[covRoot][s.rootMode+": a fault served"] == 0 {
				s.cov.add(covRoot, s.rootMode+": a fault served")
			}
		}
	}
}

// finalRootCheck: once settled, the mount's credential is the one Auth0 holds and logs
// in, and Auth0 keeps no credential of the application that config does not know
// (invariant 19).
func (s *sim) finalRootCheck() {
	cfg := s.storedConfig()
	if why := s.rootUnsettled(); why != "" {
		s.fail("invariant 19: the root credentials did not settle: %s", why)
	}
	if s.rootMode == rootModeSecret {
		if auth0, _ := s.emu.ClientSecret(testMgmtID); auth0 != cfg.ClientSecret || !s.authenticatesTo(testMgmtID, cfg.ClientSecret, s.emuURL+"/api/v2/") {
			s.fail("invariant 19: config's client secret is not the one Auth0 holds for the Management API application, or does not log in")
		}
		return
	}
	cur := cfg.RootKey.Current()
	sec, err := model.LoadSecret(s.ctx, s.base, engine.RootKeyName, nil, cur.Version)
	if err != nil || sec == nil {
		s.fail("invariant 19: the secret entry of the mount's key version %d: %v", cur.Version, err)
	}
	if !s.keyLogsIn(testMgmtID, sec.PrivateKey, sec.KID, sec.Algorithm) {
		s.fail("invariant 19: the mount's key %s (version %d) does not log in", cur.KeyID, cur.Version)
	}
	stored, _, _ := s.emu.Credentials(testMgmtID)
	known := rootKeyIDs(cfg)
	for _, c := range stored {
		if !known[c.ID] {
			s.fail("invariant 19: Auth0 keeps credential %s (%s) for the Management API application, which config does not know: an orphan", c.ID, c.Name)
		}
	}
}
