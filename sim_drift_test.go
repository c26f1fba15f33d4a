package auth0

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// Drift as one of TestSimulation's faults: Auth0 changed behind Vault's back (a secret
// rotated in the Dashboard, the current key or certificate detached, a credential Vault
// did not register attached), found by the drift checks of config's drift_check_period
// and taken back by drift_action=rotate or by the operator; invariants 20 to 23
// (sim_test.go).
//
// The model: a drift starts with the step that makes it (stepDrift) and lasts until
// Vault takes the credential back (takenBack: Auth0 no longer holds the secret set
// outside, or creds serve it; the role's current credential attached again and no
// foreign one attached); then the role's drift_detected must be cleared, and the drift is
// over. While it lasts, the checks of what Auth0 holds and accepts (1, 8, 12 to 15, 18)
// make room for it on that role alone, and the drift checks must find it.

// Drift variants.
const (
	driftSecret  = "secret rotated outside Vault"                               // RotateSecretOutside
	driftDetach  = "current credential detached"                                // during an overlap: the previous one stays attached
	driftForeign = "a credential Vault did not register attached next to it"    // AddCredential + attach both
	driftReplace = "a credential Vault did not register attached instead of it" // AddCredential + attach it alone
)

// covDrift counts the drifts a run went through, and how each was found and taken back.
const covDrift = "drift"

// The drift classes every run must cover.
const (
	covDriftSecret   = "found: a client secret rotated outside Vault"
	covDriftKey      = "found: a key or certificate detached, or one Vault did not register attached"
	covDriftRotate   = "taken back by drift_action=rotate"
	covDriftOperator = "taken back by the operator"
)

// simDrift is a drift of a role's credential at Auth0.
type simDrift struct {
	variant string
	at      time.Time
	version int    // the role's current version when it started
	secret  string // driftSecret: the secret Auth0 holds since
	key     string // driftDetach, driftReplace: the credential detached (the current one then)
	foreign string // driftForeign, driftReplace: the credential added
	// from is the later of: the drift, the end of the last step after which the role was
	// not eligible for a drift check (or before which it was not), the last step that
	// served a fault a check may have met, started a backend or wrote config. A check of
	// the role at its first moment after from must find the drift (after the drift was
	// taken back: clear the record).
	from time.Time
	// detected: a check found it (the record seen, or the log saying so); recorded: its
	// record was seen; healed: Vault took the credential back, at the step that began at
	// version healVersion; operated: the operator acted on it; operatorAt: when the
	// operator acts (next); recheck: the rotation it set going may have lost its failure
	// record to a storage failure, so the next check rotates again.
	detected, recorded, healed, operated, recheck bool
	healVersion                                   int
	operatorAt                                    time.Time
	// staleFailure is the time of a failure record that a later failure may not have
	// replaced (its storage failed).
	staleFailure time.Time
}

// simForeignCert is the key of the certificates the simulation attaches "in the
// Dashboard" to certificate roles' applications.
type simForeignCert struct{ key *ecdsa.PrivateKey }

// setupDrift picks the run's drift_check_period (between 2h and the default 24h) into
// config's data.
func (s *sim) setupDrift(cfg map[string]interface{}) {
	periods := []time.Duration{2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 12 * time.Hour, 0}
	s.driftPeriod = periods[s.rng.IntN(len(periods))]
	if s.driftPeriod == 0 {
		s.driftPeriod = model.DefaultDriftCheckPeriod
		return
	}
	cfg["drift_check_period"] = s.driftPeriod.String()
}

// driftActionFor gives a new role its drift_action at random: the default (report),
// report or rotate.
func (s *sim) driftActionFor(r *simRole, data map[string]interface{}) {
	r.driftAction = model.DriftActionReport
	switch s.rng.IntN(3) {
	case 1:
		data["drift_action"] = model.DriftActionReport
	case 2:
		data["drift_action"] = model.DriftActionRotate
		r.driftAction = model.DriftActionRotate
	}
}

// noteCheckFault notes an Auth0 fault served to a request a drift check sends (the read
// of an application, the Management API login). The caller holds s.mu.
func (s *sim) noteCheckFault(kind, clientID string) {
	switch kind {
	case "read", "verify", "methods":
		s.checkFaulted[clientID] = true
	case "root token":
		s.checkFaulted["*"] = true
	}
}

// stepDrift is the operator acting on a drift found, when one is due, else a new drift.
func (s *sim) stepDrift() string {
	now := s.clock.Now()
	for _, r := range s.roles {
		if d := r.drift; d != nil && (!d.healed || r.foreign != "") && !d.operatorAt.IsZero() && !now.Before(d.operatorAt) {
			return s.operate(r)
		}
	}
	var roles, early, wanted []*simRole
	for _, r := range s.roles {
		if len(s.driftVariants(r)) > 0 {
			roles = append(roles, r)
			if s.checkedFirst(r) {
				early = append(early, r)
				if s.driftWanted(r) {
					wanted = append(wanted, r)
				}
			}
		}
	}
	if len(roles) == 0 {
		return "drift: no role to drift"
	}
	// Half the time a role whose next check comes before its next job (which would
	// otherwise often take the credential back before a check finds the drift), of a
	// kind and drift_action the run has not covered yet if there is one.
	switch {
	case s.rng.IntN(2) == 0:
	case len(wanted) > 0:
		roles = wanted
	case len(early) > 0:
		roles = early
	}
	r := roles[s.rng.IntN(len(roles))]
	variants := s.driftVariants(r)
	return s.injectDrift(r, variants[s.rng.IntN(len(variants))])
}

// driftVariants are the drifts r can take now: none while it has no version, a drift
// under way, a rotation in flight, a key pending or a staged secret switching; a key or
// certificate role's current credential detached during an overlap (the previous one
// stays attached), and otherwise one Vault did not register attached next to it or (keys)
// instead of it.
func (s *sim) driftVariants(r *simRole) []string {
	pre := r.pre
	if pre == nil || pre.CurrentVersion() == 0 || r.drift != nil || r.foreign != "" || r.inFlight || pre.PendingKey != nil || pre.Staged != nil && pre.Staged.Switching {
		return nil
	}
	if !r.keys {
		return []string{driftSecret}
	}
	stored, attached, _ := s.emu.Credentials(r.clientID)
	cur := pre.Current().KeyID
	switch {
	case !slices.Contains(attached, cur):
	case len(attached) == 2:
		return []string{driftDetach}
	case len(attached) == 1 && len(stored) == 1 && r.k.cert:
		return []string{driftForeign}
	case len(attached) == 1 && len(stored) == 1:
		return []string{driftForeign, driftReplace}
	}
	return nil
}

// injectDrift changes r's credential at Auth0 behind Vault's back, as variant says.
func (s *sim) injectDrift(r *simRole, variant string) string {
	now := s.clock.Now()
	pre := r.pre
	d := &simDrift{variant: variant, at: now, from: now, version: pre.CurrentVersion()}
	label := r.kind()
	switch {
	case r.keys && r.k.cert:
		label = "certificate"
	case r.staged && pre.Staged != nil:
		label += " (publishing)"
	}
	switch variant {
	case driftSecret:
		secret, err := s.emu.RotateSecretOutside(r.clientID)
		if err != nil {
			s.fail("harness: rotating %s's secret outside Vault: %v", r.clientID, err)
		}
		s.logs.addSecret(secret) // invariant 4: the engine reads it back, never logs it
		r.outside[secret] = true
		d.secret = secret
	case driftDetach:
		_, attached, _ := s.emu.Credentials(r.clientID)
		d.key = pre.Current().KeyID
		rest := slices.DeleteFunc(slices.Clone(attached), func(id string) bool { return id == d.key })
		if err := s.attach(r, rest...); err != nil {
			return fmt.Sprintf("drift: %s: detaching %s refused: %v", r.name, d.key, err) // an expired previous certificate
		}
		r.driftKeys[d.key] = true
	case driftForeign, driftReplace:
		id, err := s.addForeign(r)
		if err != nil {
			s.fail("harness: adding a credential to %s: %v", r.clientID, err)
		}
		d.foreign, r.foreign = id, id
		ids := []string{pre.Current().KeyID, id}
		if variant == driftReplace {
			d.key, ids = ids[0], ids[1:]
			r.driftKeys[d.key] = true
		}
		if err := s.attach(r, ids...); err != nil {
			// The current certificate expired (its renewal was held up): nothing attached.
			if rerr := s.emu.RemoveCredential(r.clientID, id); rerr != nil {
				s.fail("harness: attaching %v to %s: %v; removing %s again: %v", ids, r.clientID, err, id, rerr)
			}
			r.foreign = ""
			return fmt.Sprintf("drift: %s: attaching %v refused: %v", r.name, ids, err)
		}
	}
	r.drift = d
	s.cov.add(covDrift, "drifted: "+label+", "+variant)
	s.counts["drift"]++
	return fmt.Sprintf("drift: %s (%s, drift_action=%s): %s", r.name, label, r.driftAction, variant)
}

// attach replaces the credentials attached to r's application, at once.
func (s *sim) attach(r *simRole, ids ...string) error {
	if r.k.cert {
		return s.emu.AttachCertificates(r.clientID, ids...)
	}
	return s.emu.AttachCredentials(r.clientID, ids...)
}

// addForeign stores a credential Vault did not register for r's application: a public key
// (one per run), or a self-signed certificate.
func (s *sim) addForeign(r *simRole) (string, error) {
	if r.k.cert {
		if s.foreignCert == nil {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return "", err
			}
			s.foreignCert = &simForeignCert{key: key}
		}
		now := s.clock.Now()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(s.step)<<16 | int64(s.rng.IntN(1<<16))),
			Subject:      pkix.Name{CommonName: "added in the Dashboard"},
			NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.foreignCert.key.PublicKey, s.foreignCert.key)
		if err != nil {
			return "", err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return "", err
		}
		info, err := s.emu.AddCertificateCredential(r.clientID, emulator.CertificateSpec{Name: "added in the Dashboard", Certificate: cert})
		return info.ID, err
	}
	info, err := s.emu.AddCredential(r.clientID, emulator.CredentialSpec{Name: "added in the Dashboard", PEM: simForeignPublicKey})
	return info.ID, err
}

// simForeignPublicKey is the public key "added in the Dashboard" to private_key_jwt roles'
// applications (a 2048-bit RSA key made once: making one costs a run 50 ms or more). No
// one holds its private key.
const simForeignPublicKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2m5LNVsVIeRVAv9p2lL9
UX8sT9IPfvRiWLhlHkc3POCq4wP7C6KuEjxt61FeoS9Tx5Qp4Kq6eRb33y2ahKe8
DhhKfFrcVv0vH1MNjPqCIP2+othJGPqhQU/8y45006iJ+ft3BflkHefvbGFLTAB9
+WNst47d0gG1JC0VtSuUrCMik98GGrUmYKBp/MXCZPgRQRljbzXsq3etlRZwgl/5
ADVLu8eVzMAV7SOSsR8oC32bd4jaUEOQpvnMqsl90OD4GMEEeYx1pvTTq4vvEfp9
6nMEkDZXF7OBrerecV+8nY5x/18M24bUbFVR9ih8Do4h6mTvmICHXqquC9nUTWrb
OQIDAQAB
-----END PUBLIC KEY-----
`

// operate is the operator taking a drift found back, some time after it was found: a
// credential Vault did not register goes first (detached and deleted, Vault's own
// attached again: what the refusal at Auth0's credential limit asks), then, unless
// drift_action=rotate rotates, a manual rotate (of a staged role with switch_now=true, of
// a role in an overlap with end_overlap=true, as their refusals say). Vault may have
// taken the credential back already but for the one added outside it, which it never
// deletes: then the operator deletes it and rotates, as the failure says.
func (s *sim) operate(r *simRole) string {
	d, pre := r.drift, r.pre
	d.operated = true
	d.operatorAt = s.clock.Now().Add(2 * time.Hour) // again, if this does not take it back
	s.counts["drift operator"]++
	desc := "drift: the operator takes back " + r.name + "'s credential:"
	if r.foreign != "" {
		if d.variant == driftReplace {
			if err := s.attach(r, pre.Current().KeyID); err != nil {
				s.fail("harness: attaching %s's current credential again: %v", r.name, err)
			}
		}
		if err := s.emu.RemoveCredential(r.clientID, r.foreign); err != nil {
			s.fail("harness: removing the credential added to %s: %v", r.clientID, err)
		}
		desc += " removed the credential added outside Vault;"
		r.foreign, r.blockedUntil = "", pre.CurrentVersion()
	}
	if r.driftAction == model.DriftActionRotate && !d.healed {
		return desc + " drift_action=rotate rotates"
	}
	opt := ""
	switch {
	case r.staged:
		opt = actSwitchNow
	case r.keys && pre.Overlap != nil:
		opt = actEndOverlap
	}
	rotated, _ := s.rotateWith(r, opt)
	return desc + " " + rotated
}

// driftRotating: r's rotations during the step may be the one that takes back a drift
// (drift_action=rotate), or its retry: a drift was under way when the step began, or
// one was recorded.
func (r *simRole) driftRotating() bool {
	return r.pre != nil && r.pre.DriftAction == model.DriftActionRotate && (r.driftWas || r.pre.DriftDetected != nil)
}

// driftActive: Auth0 holds a drift of r's credential that Vault has not taken back.
func (s *sim) driftActive(r *simRole) bool { return r.drift != nil && !r.drift.healed }

// driftDetaching: a drift under way detached r's current credential.
func (s *sim) driftDetaching(r *simRole) bool {
	return s.driftActive(r) && (r.drift.variant == driftDetach || r.drift.variant == driftReplace)
}

// limitExempt: a credential added outside Vault takes (or took, and no version was made
// since) the second of the application's two credentials, so that rotations fail at
// Auth0's credential limit: the documented refusal.
func (r *simRole) limitExempt(role *model.RoleEntry) bool {
	return r.foreign != "" || r.blockedUntil > 0 && role.CurrentVersion() <= r.blockedUntil
}

// adopted is how many of the versions of r count as made by no rotation of Vault's: a
// rotation whose outcome was unknown read back the secret set outside Vault (a drift) and
// stored it as "recovered". Those still retained are known; the others (dropped by
// max_versions) are as many as invariant 1 needs, up to one per secret set outside.
func (s *sim) adopted(r *simRole, role *model.RoleEntry, made, rotations, wals int) int {
	if len(r.outside) == 0 || r.staged {
		return 0 // a staged role never reads a secret back: it PATCHes its own
	}
	for _, v := range role.Versions {
		if v.Source != model.SourceRecovered || r.adopted[v.Version] {
			continue
		}
		if sec, err := model.LoadSecret(s.ctx, s.base, r.name, role, v.Version); err == nil && sec != nil && r.outside[sec.Secret] {
			r.adopted[v.Version] = true
			s.cov.add(covDrift, "taken back: a recovery read the secret set outside Vault back")
		}
	}
	known := len(r.adopted)
	for a := known; a <= len(r.outside); a++ {
		if m := made - a; wals == 0 && rotations == m || wals == 1 && (rotations == m || rotations == m+1) {
			return a
		}
	}
	return known
}

// simDriftStep is what a step did that the drift invariants weigh.
type simDriftStep struct {
	// excuse: a storage failure was served, a backend started, config was written, or
	// the Management API login took a fault: any drift check may have failed, or the
	// sweeps restarted.
	excuse bool
	// faulted: the applications whose reads took an Auth0 fault (their check may have).
	faulted map[string]bool
	// found, rotated: the roles the engine's log says a check found drifted, and the drift
	// action rotated.
	found, rotated map[string]bool
	// log is what the engine logged during the step, for failures.
	log string
}

var driftLogRole = regexp.MustCompile(`\brole=(\S+)`)

// driftStep gathers what the step did for the drift invariants, and notes which roles
// had a drift under way when it began.
func (s *sim) driftStep() simDriftStep {
	st := simDriftStep{found: map[string]bool{}, rotated: map[string]bool{}}
	s.mu.Lock()
	st.faulted = maps.Clone(s.checkFaulted)
	s.mu.Unlock()
	st.excuse = s.sweepReset || st.faulted["*"] || s.plan.served() > s.storageSeen
	text, n := s.logs.since(s.logRead)
	s.logRead = n
	st.log = text
	if strings.Contains(text, "credential drift") || strings.Contains(text, "take the credential back") {
		for _, line := range strings.Split(text, "\n") {
			m := driftLogRole.FindStringSubmatch(line)
			switch {
			case m == nil:
			case strings.Contains(line, "credential drift: Auth0 no longer holds what Vault serves"):
				st.found[m[1]] = true
			case strings.Contains(line, "rotating to take the credential back"):
				st.rotated[m[1]] = true
			}
		}
	}
	for _, r := range s.roles {
		r.driftWas = s.driftActive(r)
		if st.found[r.name] && !r.driftWas {
			// 20, before 2 and 17 see the rotation drift_action=rotate set going.
			s.fail("invariant 20: a drift check found drift of role %s, whose credential Auth0 holds as Vault left it (last drift %s); %s",
				r.name, s.describeDrift(r), s.describeForDrift(r, s.storedRole(r.name))+"\n"+logOf(st.log, r.name))
		}
	}
	return st
}

// driftStepDone starts the next step's account.
func (s *sim) driftStepDone() {
	s.sweepReset = false
	s.mu.Lock()
	clear(s.checkFaulted)
	s.mu.Unlock()
	s.storageSeen = s.plan.served()
}

// since is what the log holds from off on, and its length.
func (l *simLog) since(off int) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	off = min(off, len(b))
	return string(b[off:]), len(b)
}

// driftEligible mirrors the roles a drift check looks at: a version, and nothing in
// flight (no failure being retried, no key pending, no staged switch under way), not
// blocked; and no rotation write-ahead entry from the current version (driftBefore).
func driftEligible(role *model.RoleEntry) bool {
	return role != nil && !role.Legacy() && role.CurrentVersion() > 0 && role.Blocked == "" && role.LastFailure == nil &&
		role.PendingKey == nil && (role.Staged == nil || !role.Staged.Switching)
}

// driftCheckAfter is the first drift check moment of role name after t: the engine's
// checks of a role fall at the moments its name gives in each period (DriftDue).
func driftCheckAfter(name string, period time.Duration, t time.Time) time.Time {
	lo, hi := t, t.Add(period) // exactly one moment in (t, t+period]
	for hi.Sub(lo) > 1 {
		mid := lo.Add(hi.Sub(lo) / 2)
		if engine.DriftDue(name, period, t, mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// driftDue: a check of r at its first moment after its drift's from has run: a sweep ran
// at or after that moment (it covers it), or the scheduler ran a period after it (a sweep
// is never queued later than that).
func (s *sim) driftDue(r *simRole) bool {
	t := driftCheckAfter(r.name, s.driftPeriod, r.drift.from)
	return !s.lastSweep.Before(t) || !s.lastRunDue.Before(t.Add(s.driftPeriod))
}

// whatFits: a drift_detected record's what names the kind of the drift.
func (s *sim) whatFits(d *simDrift, what string) bool {
	detached := strings.Contains(what, "is no longer attached") && strings.Contains(what, "credential "+d.key+",")
	foreign := strings.Contains(what, "did not register are attached: ") && strings.Contains(what, d.foreign)
	switch d.variant {
	case driftSecret:
		return strings.Contains(what, "another secret than version")
	case driftDetach:
		return detached && !strings.Contains(what, "did not register")
	case driftForeign:
		return foreign && !strings.Contains(what, "no longer attached")
	case driftReplace:
		return detached && foreign
	}
	return false
}

// takenBack: Vault holds r's credential at Auth0 again.
func (s *sim) takenBack(r *simRole, role *model.RoleEntry) bool {
	d := r.drift
	if d.variant == driftSecret {
		auth0, _ := s.emu.ClientSecret(r.clientID)
		creds, err := model.LoadCreds(s.ctx, s.base, r.name)
		if err != nil {
			s.fail("creds/%s: %v", r.name, err)
		}
		return auth0 != d.secret || creds != nil && creds.Current != nil && creds.Current.Secret == d.secret
	}
	_, attached, _ := s.emu.Credentials(r.clientID)
	current := role.Current() != nil && slices.Contains(attached, role.Current().KeyID)
	switch d.variant {
	case driftDetach:
		return current
	case driftForeign:
		return !slices.Contains(attached, d.foreign)
	}
	return current && !slices.Contains(attached, d.foreign)
}

// markFound counts a drift the engine found, and has the operator act on it later when
// it must: for drift_action=report, or to remove a credential added outside Vault.
func (s *sim) markFound(r *simRole) {
	d := r.drift
	if d.detected {
		return
	}
	d.detected = true
	if r.keys {
		s.cov.add(covDrift, covDriftKey)
	} else {
		s.cov.add(covDrift, covDriftSecret)
	}
	s.counts["drift found"]++
	if r.driftAction != model.DriftActionRotate || r.foreign != "" {
		d.operatorAt = s.clock.Now().Add(time.Duration(s.rng.IntN(4*60)) * time.Minute)
	}
}

// driftBefore checks, before the checks of r's kind, that no check recorded a drift
// where there was none (invariant 20), and updates the model: whether Vault took the
// credential back, and from when a check must find the drift (or clear its record).
func (s *sim) driftBefore(r *simRole, role *model.RoleEntry, wals []engine.PendingRotation, st simDriftStep) {
	held := slices.ContainsFunc(wals, func(p engine.PendingRotation) bool { return p.WAL.BaseVersion >= role.CurrentVersion() })
	heldBefore := r.walHeld
	r.walHeld = held
	now := s.clock.Now()
	rec := role.DriftDetected
	var was *model.Drift
	if r.pre != nil {
		was = r.pre.DriftDetected
	}
	fresh := rec != nil && (was == nil || !was.Time.Equal(rec.Time) || was.What != rec.What)
	if fresh && !r.driftWas {
		s.fail("invariant 20: role %s recorded drift %q, and its credential Auth0 holds as Vault left it (last drift %s); %s",
			r.name, rec.What, s.describeDrift(r), s.describeForDrift(r, role)+"\n"+logOf(st.log, r.name))
	}
	d := r.drift
	if d == nil {
		return
	}
	if fresh && !s.whatFits(d, rec.What) {
		s.fail("invariant 21: role %s recorded drift %q, which does not name its drift (%s)", r.name, rec.What, s.describeDrift(r))
	}
	if r.driftWas && (fresh || st.found[r.name] || st.rotated[r.name]) {
		s.markFound(r)
	}
	if r.driftWas && s.takenBack(r, role) {
		d.healed, d.healVersion, d.from = true, r.pre.CurrentVersion(), now
		switch {
		case d.operated:
			s.cov.add(covDrift, covDriftOperator)
		case r.driftAction == model.DriftActionRotate && d.detected:
			s.cov.add(covDrift, covDriftRotate)
		default:
			s.cov.add(covDrift, "taken back by a rotation before a check found it")
		}
		if role.CurrentVersion() > r.pre.CurrentVersion() {
			s.cov.add(covDrift, "taken back by a new version")
		} else {
			s.cov.add(covDrift, "taken back without a new version (the current credential attached again)")
		}
		s.counts["drift taken back"]++
	}
	if st.excuse || st.faulted[r.clientID] || !driftEligible(r.pre) || heldBefore || !driftEligible(role) || held {
		d.from = now
	}
}

// driftAfter checks r's drift after the checks of its kind: found in time, and with the
// right kind (21); taken back by drift_action=rotate (22); its record cleared once Vault
// took the credential back (23).
func (s *sim) driftAfter(r *simRole, role *model.RoleEntry, inFlight bool, st simDriftStep) {
	if r.blockedUntil > 0 && role.CurrentVersion() > r.blockedUntil {
		r.blockedUntil = 0
	}
	d, rec := r.drift, role.DriftDetected
	if d == nil {
		if rec != nil {
			s.fail("invariant 20: role %s records drift %q, and Auth0 holds its credential as Vault left it (%s)", r.name, rec.What, s.describeDrift(r))
		}
		return
	}
	// A credential added outside Vault makes the role's rotations fail at Auth0's limit,
	// also once Vault detached it (at the end of an overlap), and a failing role is not
	// drift-checked: the operator learns of it from the failure (auth0/status'
	// roles_failing says to delete the credential not in use).
	if f := role.LastFailure; f != nil && r.foreign != "" && strings.Contains(f.Message, "Auth0's limit") && d.operatorAt.IsZero() {
		s.cov.add(covDrift, "reported as a failure at Auth0's credential limit")
		d.operatorAt = s.clock.Now().Add(time.Duration(s.rng.IntN(4*60)) * time.Minute)
	}
	if d.healed {
		// 23. The record goes with the drift: the version that takes the credential back
		// clears it, and without one (the current key attached again) the next check.
		switch {
		case rec == nil && r.foreign != "":
			// Over for the drift checks; the operator still has a credential to delete.
		case rec == nil:
			r.drift = nil
			s.counts["drift over"]++
		case role.CurrentVersion() > d.healVersion:
			s.fail("invariant 23: role %s was taken back from its drift (%s) and made version %d since, yet it still records drift %q",
				r.name, s.describeDrift(r), role.CurrentVersion(), rec.What)
		case s.driftDue(r):
			s.fail("invariant 23: role %s was taken back from its drift (%s) at %s, and its check at %s found nothing to clear its record %q",
				r.name, s.describeDrift(r), d.from.Format(time.RFC3339Nano), driftCheckAfter(r.name, s.driftPeriod, d.from).Format(time.RFC3339Nano), rec.What)
		}
		return
	}

	// 21. Found in time, and recorded while it lasts.
	switch fits := rec != nil && s.whatFits(d, rec.What); {
	case fits:
		if !d.recorded {
			d.recorded = true
			s.markFound(r)
			s.counts["drift recorded"]++
		}
	case d.recorded:
		s.fail("invariant 21: role %s's drift (%s) lasts, yet its record is now %+v", r.name, s.describeDrift(r), rec)
	case s.driftDue(r):
		s.fail("invariant 21: role %s's drift (%s) was not found by its check at %s (eligible, no fault a check meets, since %s; the last sweep ran at %s); record %+v",
			r.name, s.describeDrift(r), driftCheckAfter(r.name, s.driftPeriod, d.from).Format(time.RFC3339Nano), d.from.Format(time.RFC3339Nano),
			s.lastSweep.Format(time.RFC3339Nano), rec)
	}

	// 22. drift_action=rotate: the check that found it set a rotation going, which is
	// under way, or failed and is retried at its next_attempt.
	if r.driftAction != model.DriftActionRotate || rec == nil {
		return
	}
	if s.driftProgress(r, role, inFlight) {
		d.recheck = false
		return
	}
	if f := role.LastFailure; f != nil && (st.excuse || d.staleFailure.Equal(f.Time)) {
		// A later failure than the one stored may have lost its record to a storage
		// failure: the role is queued from the engine's memory, at most the longest
		// backoff away.
		d.staleFailure = f.Time
		if due, queued := s.queuedDue(r); queued && !due.After(s.clock.Now().Add(engine.DefaultRetryCap)) {
			return
		}
	}
	idle := role.LastFailure == nil && role.PendingKey == nil && (role.Staged == nil || !role.Staged.Switching)
	if idle && (st.excuse || d.recheck && !s.driftDue(r)) {
		d.recheck = true // its failure record may be lost: the next check rotates again
		return
	}
	due, queued := s.queuedDue(r)
	s.fail("invariant 22: role %s (drift_action=rotate) found drifted (%q) is not taking its credential back: failure %+v, next_attempt %s, pending key %+v, overlap %+v, staged %+v; queued %v at %s",
		r.name, rec.What, role.LastFailure, role.NextAttempt.Format(time.RFC3339Nano), role.PendingKey, role.Overlap, role.Staged, queued, due.Format(time.RFC3339Nano))
}

// driftProgress: a rotation of r is under way, or queued no later than the retry of a
// failure, the publication of a pending key, the end of an overlap (a manual rotate is
// refused during it; its end attaches the current key again) or a staged switch.
func (s *sim) driftProgress(r *simRole, role *model.RoleEntry, inFlight bool) bool {
	if inFlight {
		return true // a rotation in flight: the next job resolves it
	}
	due, queued := s.queuedDue(r)
	if !queued {
		return false
	}
	bound := s.clock.Now()
	if role.LastFailure != nil {
		bound = model.Later(bound, role.NextAttempt)
	}
	if pk := role.PendingKey; pk != nil {
		bound = model.Later(bound, model.Later(pk.Started, pk.PublishAt))
	}
	if ov := role.Overlap; ov != nil {
		bound = model.Later(bound, ov.Until)
	}
	if st := role.Staged; st != nil {
		bound = model.Later(bound, st.SwitchTime)
	}
	return !due.After(bound)
}

func (s *sim) describeDrift(r *simRole) string {
	d := r.drift
	if d == nil {
		return "none under way"
	}
	return fmt.Sprintf("%s at %s from version %d, drift_action=%s, found %v, taken back %v", d.variant, d.at.Format(time.RFC3339Nano), d.version, r.driftAction, d.detected, d.healed)
}

// driftUnsettled: r's drift is not over (or a credential added outside Vault is still
// stored), so the run may not end.
func (s *sim) driftUnsettled(r *simRole) bool { return r.drift != nil || r.foreign != "" }

// settleDrift has the operator act at once on every drift found that needs the operator
// (invariant 5); drift_action=rotate takes the others back alone. It says what the
// operator did.
func (s *sim) settleDrift() []string {
	var out []string
	for _, r := range s.roles {
		if d := r.drift; d != nil && (!d.healed || r.foreign != "") && !d.operatorAt.IsZero() {
			out = append(out, s.operate(r))
		}
	}
	return out
}

// driftRequired are the drift classes every run must cover.
func (s *sim) driftRequired() []string {
	req := []string{covDriftSecret, covDriftRotate, covDriftOperator}
	if s.keyRolesWanted() {
		req = append(req, covDriftKey)
	}
	return req
}

// completeDriftCoverage drifts, after the run's time, roles of what the run left
// uncovered, and runs the clock (an hour at most at a time) until a check finds the
// drift, and drift_action=rotate or the operator takes it back.
func (s *sim) completeDriftCoverage() {
	s.plan.setFailures("", "", 0)
	goals := []struct {
		class, action string
		keys          bool
	}{
		{covDriftRotate, model.DriftActionRotate, false},
		{covDriftOperator, model.DriftActionReport, false},
		{covDriftSecret, "", false},
		{covDriftKey, "", true},
	}
	for _, g := range goals {
		if g.keys && !s.keyRolesWanted() {
			continue
		}
		for try := 0; try < 3 && s.cov[covDrift][g.class] == 0; try++ {
			s.forceDrift(g.class, g.action, g.keys)
		}
	}
}

// forceDrift drifts a role of the kind (with the action, written if no such role has it)
// and runs the clock until class is covered or the drift is over: to the role's next
// check, 2 hours at most at a time.
func (s *sim) forceDrift(class, action string, keys bool) {
	var r *simRole
	early := false
	for wait := 0; wait < 6 && r == nil; wait++ {
		if r, early = s.driftTarget(keys, action); r != nil {
			break
		}
		// The roles of the kind may all be waiting for the operator, or busy.
		if ops := s.settleDrift(); len(ops) > 0 {
			s.step++
			s.record("coverage: " + strings.Join(ops, "; "))
			s.check()
			continue
		}
		s.driftAdvance(time.Hour)
	}
	if r == nil {
		return
	}
	var data map[string]interface{}
	if action != "" && r.driftAction != action {
		data = map[string]interface{}{"drift_action": action}
		r.driftAction = action
	}
	if !early {
		// Its job would come first (and take the credential back): no schedule for it.
		data = s.scheduleFor(r.kind(), schedNone, slices.Index(s.roles, r))
		if action != "" {
			data["drift_action"] = action
		}
	}
	if data != nil {
		resp, err := s.request(logical.UpdateOperation, "roles/"+r.name, data)
		if err != nil || resp != nil && resp.IsError() {
			s.fail("coverage: role write %v on role %s: %s", data, r.name, outcome(resp, err))
		}
		s.counts["role write"]++
		s.step++
		s.sub(fmt.Sprintf("coverage: role write: %s %v", r.name, data))
	}
	variants := s.driftVariants(r)
	if len(variants) == 0 {
		return
	}
	s.step++
	s.record("coverage: " + s.injectDrift(r, variants[s.rng.IntN(len(variants))]))
	s.check()
	end := s.clock.Now().Add(s.driftPeriod + 3*time.Hour)
	for r.drift != nil && s.cov[covDrift][class] == 0 && s.clock.Now().Before(end) {
		if d := r.drift; !d.healed && !d.operated && !d.operatorAt.IsZero() {
			s.step++
			s.record("coverage: " + s.operate(r))
			s.check()
			continue
		}
		d := 2 * time.Hour // shorter than the random steps: certificates whose pending wait ate into their life stay renewed
		if r.drift != nil && !r.drift.healed {
			d = min(d, driftCheckAfter(r.name, s.driftPeriod, s.clock.Now()).Sub(s.clock.Now())+time.Second)
		}
		s.driftAdvance(d)
	}
}

// driftTarget is a settled role of the kind whose credential can drift now: first one
// whose next drift check comes before its next job (which may take the credential back
// before a check finds the drift), then one with the action. early says whether its
// check comes first.
func (s *sim) driftTarget(keys bool, action string) (best *simRole, early bool) {
	score := -1
	for _, r := range s.roles {
		if r.keys != keys || r.pre == nil || r.pre.LastFailure != nil || len(s.driftVariants(r)) == 0 {
			continue
		}
		sc := 0
		if action == "" || r.driftAction == action {
			sc++ // else drift_action is written
		}
		first := s.checkedFirst(r)
		if first {
			sc += 2
		}
		if r.keys && r.k.cert && !first {
			sc-- // its certificate's renewal comes whatever its schedule
		}
		if sc > score {
			best, early, score = r, first, sc
		}
	}
	return best, early
}

// driftWanted: a drift of r, found, would cover a drift class the run has not yet.
func (s *sim) driftWanted(r *simRole) bool {
	c := s.cov[covDrift]
	return c[covDriftRotate] == 0 && r.driftAction == model.DriftActionRotate && !r.keys ||
		c[covDriftOperator] == 0 && r.driftAction != model.DriftActionRotate ||
		c[covDriftKey] == 0 && r.keys || c[covDriftSecret] == 0 && !r.keys
}

// checkedFirst: r's next drift check comes before its next job.
func (s *sim) checkedFirst(r *simRole) bool {
	due, queued := s.queuedDue(r)
	return !queued || due.After(driftCheckAfter(r.name, s.driftPeriod, s.clock.Now()))
}

// driftAdvance runs the clock by d and what falls due, as a step.
func (s *sim) driftAdvance(d time.Duration) {
	s.step++
	s.clock.Advance(d)
	n := s.runDue()
	s.counts["advance"]++
	s.record(fmt.Sprintf("coverage: advance %s for drift, %d jobs", d, n))
	s.check()
}

// describeForDrift is what a drift check of r sees in storage and at Auth0, for failures.
func (s *sim) describeForDrift(r *simRole, role *model.RoleEntry) string {
	creds, _ := model.LoadCreds(s.ctx, s.base, r.name)
	served := "none"
	if creds != nil && creds.Current != nil {
		served = fmt.Sprintf("version %d", creds.Current.Version)
		if !r.keys {
			auth0, _ := s.emu.ClientSecret(r.clientID)
			served += fmt.Sprintf(" (the secret Auth0 holds: %v)", creds.Current.Secret == auth0)
		}
	}
	return fmt.Sprintf("role at version %d, versions %s, pending key %+v, staged %+v; creds serve %s; %d write-ahead entries",
		role.CurrentVersion(), describeVersions(role), role.PendingKey, role.Staged, served, len(s.pendingByRole()[r.name]))
}

// logOf is the lines of the engine's log text about role name (at most the last 30).
func logOf(text, name string) string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "role="+name+" ") || strings.HasSuffix(line, "role="+name) {
			lines = append(lines, "    "+line)
		}
	}
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "engine log of the step about " + name + ":\n" + strings.Join(lines, "\n")
}
