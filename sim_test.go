package auth0

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

var (
	simSeed  = flag.Uint64("sim.seed", 0, "seed of TestSimulation; 0 derives one from the time and prints it")
	simDays  = flag.Int("sim.days", 3, "virtual days TestSimulation runs (a soak: -sim.days=30 or more)")
	simRoles = flag.Int("sim.roles", 12, "roles TestSimulation manages, each with its own Auth0 application")
	simTrace = flag.Bool("sim.trace", false, "log every step of TestSimulation")
	// A quarter of the roles by default (at least one): each key costs some 50 ms to make.
	simKeyRoles = flag.Int("sim.keyroles", -1, "roles of TestSimulation with credential_type=private_key_jwt; -1: a quarter of -sim.roles")
)

// TestSimulation is a deterministic simulation of the engine, in the spirit of
// FoundationDB's and TigerBeetle's: one seed drives every choice of a run of -sim.days
// virtual days over -sim.roles roles, spread evenly over the configurations (the seed
// picks which role gets which): a quarter (-sim.keyroles) with
// credential_type=private_key_jwt, allow_auth_method_change=true, half with
// allow_assertions=true, every other one's application allowed a Management API token
// (so that the login proving a new key is answered with a token, not a 403), periods or
// schedule intervals of 8 hours or more and an overlap_period shorter than them, from 0
// to 7h59m, config's propagation_wait being 0s, 30s or 2m for the run; a third of the
// others with rotation_strategy=staged and a stage_period shorter than any period or
// schedule interval they get; half of those secret roles with import_current_secret;
// each kind's roles cycling through rotation_period, rotation_schedule, rotation_schedule
// with rotation_window and no schedule; half with a small max_versions. Each step is one
// of: advance the virtual clock (seconds to hours, or exactly to the next due role) and
// run what fell due; a
// manual rotate of a random role (of a staged role: with no option, switch_now=true or
// cancel_staged=true; of a key role: with no option or end_overlap=true, likelier during
// an overlap); arm an Auth0 fault for the next matching request (rotate-secret,
// and a staged switch's PATCH of client_secret: 500/503 or 429 with Retry-After before
// applying; 500 or a dropped connection after applying; reading a client back, any or a
// staged switch's verification read: 500/503/429; a key role's requests: POST
// /credentials as rotate-secret, GET /credentials and the read of the client (its
// authentication methods) 500/503/429, the PATCH that attaches keys and the DELETE of a
// credential 500/503/429 before or 500 or a dropped connection after applying, and the
// client-assertion login that proves a new key 500/503, a 401 as while Auth0 propagates,
// or dropped after authenticating; immediateFaults, stagedFaults, keyFaults); make
// the next K storage writes or deletes under a prefix (roles/, creds/,
// secrets/, wal/, any) fail; crash at the Nth storage operation of a manual rotate, a
// scheduler run or a rollback (every later operation fails; the crashing write may or may
// not have reached storage) and start a new backend on the same storage and clock; a clean
// restart; Vault's rollback manager (walRollback); config/rotate-root with a fault armed
// for the Management API application's requests (its PATCH of client_secret or, for a
// mount on its own key, its credentials' creation, attachment, listing and deletion, and
// its logins), every third one crashing at a storage operation (sim_root_test.go: a third
// of the runs first move the mount to private_key_jwt, every run has a
// root_rotation_period); drift behind Vault's back (sim_drift_test.go: the run has a
// drift_check_period of 2h, 4h, 6h, 12h or the default 24h, and each role a drift_action,
// the default, report or rotate): a role's secret rotated in the Auth0 Dashboard (a
// staged role's while it publishes a secret or not), a key or certificate role's current
// credential detached during an overlap, or a credential Vault did not register attached
// next to it or (keys) instead of it; or, up to 4 hours after a drift was found (or
// reported as a failure at Auth0's credential limit), the operator taking it back: the
// credential added outside Vault removed, and with drift_action=report a manual rotate
// (switch_now=true for a staged role, end_overlap=true during an overlap); a config
// write (rate_limit); a role
// write (max_versions, schedule, a staged role's stage_period or a key role's
// overlap_period); or a scenario (sim_coverage_test.go). A scenario takes a role of one
// kind in one state (no secret yet, imported, rotated, in flight, failing; publishing or
// switching a staged secret; a key pending, attached, in its overlap or past it),
// preparing or creating one if none is, arms faults for that role's application alone
// (an answer slower than the 1s request_timeout among them: it costs a second of real
// time, so only one scenario a run arms one, for rotate-secret, a staged PATCH or a
// credential's creation in turn by seed) or a crash at a given write, and acts:
// a manual rotate with an option, its due job, retries, the rollback manager, a role
// write lowering max_versions. The scenarios that start from a role's first states run
// at the start of the run; the others are picked least hit first, and those never hit
// are tried again at the end. The run then logs a coverage table (the role states and
// configurations jobs acted on, the faults served by class and by the state of the role
// they hit, storage failures, crashes, scenarios) and fails if a class every run must
// cover got no hit. The emulator keeps the virtual time too. Everything runs on the
// test's goroutine on a virtual clock whose waits jump time, so a seed replays the run
// exactly; the seed is logged at the start and in every failure, with the command that
// replays it.
//
// scripts/planted.sh checks that the default run catches the defects planted by the
// patches in testdata/planted/.
//
// After every step, reading storage directly, it checks:
//
//  1. Exactly once. Every rotation write-ahead entry names an existing role and its
//     application. At most one entry per role is unresolved (the engine has not tried to
//     delete it; one whose delete failed after it was resolved stays behind, stale), and
//     it starts from the role's current version, or from the one before if the current
//     version records its ID. With no unresolved entry for the role, the Auth0 rotations
//     of its application equal the versions rotation created (current_version, less 1 if
//     the secret was imported; a "recovered" version is the outcome of one rotation, but
//     one that read back a secret set outside Vault (a drift), which no rotation of
//     Vault's made: at most one per such secret, at least those still retained); with
//     one, they equal that number or one more. The emulator's own count agrees.
//     Auth0 never rotates an application no role manages, nor another role's application
//     during a manual rotate. The role never carries the warning that recovery had to
//     rotate again (the simulation grants read:client_keys), is never blocked, and owns
//     its application. Staged roles have no write-ahead entry and no rotate-secret at all;
//     6, 7 and 10 check them instead.
//  2. Schedule. Every Auth0 rotate-secret that was not a manual rotate is of a role with a
//     schedule and happens no earlier than the role's due time stored before the step (the
//     later of next_vault_rotation and next_attempt), and no earlier than its schedule
//     allows after the previous Auth0 rotation of the application (or the role's
//     creation), unless a failure was recorded on the role in between. (Staged roles'
//     PATCHes are no rotate-secret; 11 checks their schedule. For 2, 11 and 17 the
//     rotation that takes back a drift, or its retry, counts as a manual rotate: one of a
//     drift_action=rotate role during a drift or with drift recorded; 22 checks it.)
//  3. Versions. Version numbers are consecutive, at most max_versions are retained, only
//     version 1 may be imported, and every retained version has its secret entry (same
//     number and write-ahead ID). creds/<name> holds nothing before the first version;
//     then it holds the current version with its secret entry's secret, as previous the
//     version before if it is retained and nothing if it is not; while a rotation is
//     unresolved it may instead hold the next version, whose secret entry records that
//     rotation (for a staged role: while its staged secret is switching, that staged
//     version, a commit cut short between creds and the role). A creds read through the
//     backend, as an application reads it, serves what creds/<name> holds; with no
//     unresolved rotation (and for an immediate role) that is the secret Auth0 holds,
//     unless a drift is under way (20 to 23 instead).
//  4. No secret in the logs: the engine's log (trace level) never contains a secret the
//     emulator issued (the management application's or any application's, ever) or that
//     Vault generated for a staged role.
//  5. At the end, with faults cleared, the clock is run forward (with rollbacks, and
//     manual rotates of unscheduled roles left failing, but of a drift_action=rotate role
//     whose drift was found: it takes its credential back alone) until no write-ahead
//     entry is left, no role records a failure, no staged secret is past its switch time,
//     no key is pending, no overlap is past its end, no drift is under way or recorded and
//     no credential added outside Vault is left (the operator acts at once on a drift
//     found that needs it); then 1 to 4 and 6 to 23 hold, and every role
//     with a version serves, at creds/<name>, the secret Auth0 holds, which obtains a token
//     at the emulator (a key role: its current key, attached, which logs in with a client
//     assertion, as its previous key does if served; a key role without a version left its
//     application on its secret, with no credential).
//
// Staged roles (rotation_strategy=staged) are also checked by:
//
//  6. Only PATCHes (a). Auth0 never sees rotate-secret for a staged role's application,
//     and PATCHes client_secret only of staged roles' applications.
//  7. Only known secrets (b). Auth0 only ever holds secrets Vault stored first: the secret
//     every PATCH sets (read from the emulator in the fault hook, after it applied) is, at
//     that moment, the secret entry of the role's stored staged version.
//  8. Zero downtime (c). While creds/<name> serves a secret, Auth0 holds its current
//     secret or the role's staged one, and a consumer that reads creds/<name> through the
//     backend and tries client_secret, else next_client_secret, else
//     previous_client_secret finds the secret Auth0 holds; unless a drift is under way.
//  9. Staged versions (d). Versions stay consecutive; a staged version's number is the
//     current one plus 1, its secret entry (source "staged") exists, and creds/<name>
//     publishes it as next; a version made by a switch has source "staged", a staged time
//     and a verification recorded; only staged roles have staged versions. (A next that
//     creds/<name> still publishes after its stage was cut short or cancelled, with no
//     stage on the role, is tolerated and counted as "stale next".)
//  10. One secret per switch (e). No two PATCHes of a role set different secrets unless a
//     switch committed (the current version grew) or a stage was cancelled in between;
//     Auth0's changes of the application's secret (the emulator's SecretPatches) equal
//     the versions switches made, plus one while Auth0 holds the staged secret before the
//     switch committed.
//  11. Staged schedule (f). A secret staged other than by a manual rotate of the role is of
//     a role with a schedule, published no earlier than next_vault_rotation − stage_period
//     (nor than a next_attempt stored before the step), to switch no earlier than
//     next_vault_rotation and than stage_period after its publication; a PATCH other than
//     by a manual rotate goes out no earlier than the stored switch_time and next_attempt.
//
// private_key_jwt roles (credential_type=private_key_jwt) are checked, instead of 1 to 3,
// by 3's checks of versions (consecutive, within max_versions, each with its own
// credential, kid and algorithm and its private key in its secret entry) and ownership,
// and by the following. Their logins are client assertions signed as an application signs
// them (with the emulator's signer); an outcome is remembered per set of credentials
// attached, on which alone the emulator's answer depends. A drift under way makes room in
// 12 to 15 and 18 as each says, for its role alone.
//
//  12. At most two credentials (a). After every step, Auth0 stores at most 2 credentials
//     for the application and attaches at most 2, and neither a failure the role records
//     nor an answer to a manual rotate says Auth0's credential limit was reached, unless
//     a credential added outside Vault takes the second one (from its addition to the
//     first version after its removal: the documented refusal).
//  13. Only Vault's keys, each once (b). Auth0 never rotates the application's secret nor
//     PATCHes it, and the role has no write-ahead entry. Auth0 created exactly as many
//     credentials for the application as the role has made versions (one more while a key
//     is pending): no key is registered twice, none is lost, and Vault never deletes a
//     credential added outside it (which counts in neither). Whenever no key is pending
//     (with or without a failure recorded: stronger than "once caught up"), every
//     credential Auth0 stores or attaches is the role's current key or in its overlap
//     (current().KeyID, Overlap.CredentialIDs), or one added outside Vault: no orphan, no
//     key Vault does not hold; while one is pending, also the credential named after it.
//     The current key is attached, unless a drift detached it. Once the role has a version its application is on private_key_jwt and its
//     old client secret obtains no token; before, it has no credential.
//  14. Creds log in (c). creds/<name> holds the role's current version (its credential and
//     kid), or while a key is pending, that key (a commit cut short between creds and the
//     role); a previous key only while the role's overlap lists it. Read through the
//     backend it serves that (private_key, key_id, kid, algorithm; no client_secret); with
//     a current version, private_key logs in, also while a new key is pending (stronger
//     than "no rotation in flight": the current key stays attached next to it), unless a
//     drift detached it or the certificate expired while a credential added outside Vault
//     or a stalled scheduler held up its renewal (18). A previous_private_key it serves
//     logs in too (a previous certificate past its expiry is not served), also past overlap_until or after
//     end_overlap=true was asked: the engine stops serving the previous key before it asks
//     Auth0 to detach it (overlap "ending"). A key is served from no earlier than propagation_wait after
//     Auth0 first had it attached (seen in the fault hook); a manual rotate that answers a
//     pending_version answers the role's pending key, attached, and its publish_time,
//     propagation_wait after the attachment. With allow_assertions=true, the client
//     assertion assertion/<name> signs logs in (checked whenever the key served or the
//     credentials attached change).
//  15. Overlap (d). A rotation puts the key it replaces in the overlap, until
//     overlap_period after the new version. A key creds served keeps logging in until the
//     end of the latest overlap seen listing it, unless an end_overlap=true rotate was
//     asked while it was listed; once Auth0 no longer has it attached it fails to log in,
//     and it is never attached again (but one a drift detached behind Vault's back: Vault
//     takes it back). A manual rotate answers success, an error (the
//     faults injected are errors, not refusals), or the documented refusal, and that only
//     while an overlap stored before it runs, without end_overlap and no key pending; one
//     with end_overlap=true that succeeds leaves no credential of the ended overlap at
//     Auth0.
//  16. No private key leaks (e). Neither the engine's log, nor any answer to a manual
//     rotate or of assertion/<name>, nor a read of roles/<name> or versions/<name> after
//     every step contains a PEM
//     private key or a piece of any key the engine generated (each is registered as the
//     engine's generator hands it out).
//  17. Key schedule. A key rotation not started by a manual rotate (a pending key or a
//     version with source "scheduled" that appeared during the step) is of a role that had
//     a schedule, and started no earlier than its stored next_vault_rotation and
//     next_attempt and the end of its overlap; for a certificate role, or no earlier than
//     the renewal of its current certificate (two thirds into its lifetime) and next_attempt.
//
// Every other key role rotates self-signed mTLS certificates
// (credential_type=self_signed_tls_client_auth) and is checked by 12 to 17 likewise, its
// "keys" being certificates: versions record a thumbprint and an expiry instead of a kid
// and algorithm, creds serve certificate, private_key, thumbprint_sha256 and expires_at
// (and the previous ones), and logins present the certificate as the tenant's edge
// forwards it. Their certificate_ttl leaves a third of a certificate's life longer than
// the longest step, and:
//
//  18. Certificates in date. creds/<name> never serves a certificate that has expired,
//     as current or as previous (also while the overlap's end is retried), unless a
//     credential added outside Vault held up its renewal, or the scheduler did not run
//     while the role was due: an advance runs the jobs that fell due during it only at its
//     end, as after Vault was down, and a certificate that expires between the role's due
//     time and propagation_wait (and 30 minutes of retries) after that end is let be until
//     its renewal is current (noteStalls).
//
// And of the mount's own credentials (sim_root_test.go):
//
//  19. The mount never loses its credentials. With a client secret: the secret Auth0
//     holds for the Management API application is config's client_secret or its pending
//     one, and both count as secrets for 4. With a key: every credential attached to the
//     application is one config knows (its key, the previous ones during the overlap, its
//     pending key), its key is attached, and no more than 2 are. Once faults are cleared
//     and the run settles: nothing pending or failed, config's credential is the one
//     Auth0 holds and logs in, and Auth0 keeps no credential of the application that
//     config does not know.
//
// And of drift, Auth0 changed behind Vault's back (sim_drift_test.go). A drift lasts from
// the step that makes it until Vault takes the credential back: Auth0 no longer holds the
// secret set outside Vault (or creds serve it: a recovery read it back), the role's
// current credential is attached again, the credential added outside Vault detached. A
// role is eligible for a drift check when it has a version, no failure recorded, no key
// pending, no staged switch under way, no rotation write-ahead entry from its current
// version, and is not blocked. A role's checks fall at the moments its name gives in each
// drift_check_period (engine.DriftDue); a sweep checks the roles whose moment passed
// since the last one.
//
//  20. No false drift. drift_detected is recorded (or "credential drift" logged) only for a
//     role whose drift was under way when the step began: never for one whose credential
//     Auth0 holds as Vault left it (a check racing a rotation, a staged secret published
//     or switching, a key's overlap or a pending key, a rotation whose outcome a crash or
//     a storage failure kept from storage), and none is left on a role once its drift is
//     over.
//  21. Found in time. Let from be the later of: the drift; the end of the last step before
//     or after which the role was not eligible; the last step that served a fault a check
//     may meet (an Auth0 fault for a read of the role's application or for the Management
//     API login, a storage failure), started a backend or wrote config (the sweeps start
//     again then). The first sweep that runs at or after the role's first check moment
//     after from, and at the latest the scheduler's run a drift_check_period after that
//     moment, finds the drift: drift_detected is recorded, its what naming it (another
//     secret than the version creds serve; the current credential, by id, no longer
//     attached; the credential Vault did not register, by id, attached), and it stays
//     while the drift lasts. A check that a fault made fail waits for the next period:
//     the faults in from stand for that.
//  22. drift_action=rotate takes it back. After every step at whose end such a role whose
//     drift lasts records drift_detected, a rotation of it is in flight (a write-ahead
//     entry), or the role is queued no later than the latest of: now, its failure's retry
//     (next_attempt; at once if a schedule change reset it), a pending key's publication,
//     its overlap's end (a manual rotate is refused during it; its end attaches the
//     current credential again), a staged switch. (After a step that served a storage
//     failure an idle role may have lost its failure record: the next check rotates
//     again; a later failure than the one stored: queued within the longest backoff.) A
//     credential added outside Vault makes that rotation fail at Auth0's limit, retried
//     until the operator removes it. At the end (5) such a role gets no manual rotate.
//  23. The record goes with the drift. Once Vault took the credential back, drift_detected
//     is cleared by the version that did (none is left after a version made since), or,
//     without one (the current credential attached again at an overlap's end, a
//     credential added outside Vault removed), by the role's first check after the taking
//     back (from as in 21).
//
// Run a soak with: go test -run TestSimulation -sim.days=30 -v .
func TestSimulation(t *testing.T) {
	seed := *simSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed=%d; replay: go test -run TestSimulation -sim.seed=%d -sim.days=%d -sim.roles=%d .", seed, seed, *simDays, *simRoles)
	start := time.Now()
	s := newSim(t, seed, *simDays, *simRoles)
	s.run()
	s.reportCoverage()
	t.Logf("seed=%d: %d steps, %s virtual, %s real; %s", seed, s.step, s.clock.Now().Sub(s.start).Round(time.Minute), time.Since(start).Round(time.Millisecond), s.summary())
}

// sim is one simulation run.
type sim struct {
	t      *testing.T
	ctx    context.Context
	seed   uint64
	days   int
	nRoles int
	rng    *rand.Rand
	start  time.Time
	clock  *fakeClock
	base   *logical.InmemStorage
	plan   *simStoragePlan
	store  *simStorage
	b      *backend
	emu    *emulator.Server
	emuURL string
	logs   *simLog

	roles    []*simRole
	byName   map[string]*simRole
	byClient map[string]*simRole

	// Touched by the emulator's fault hook, which runs on the server's goroutines.
	mu         sync.Mutex
	planned    []simFault
	manual     string // client ID a manual rotate is running for
	events     []simRotation
	rotations  map[string]int // client ID -> Auth0 rotations seen
	patches    []simPatch     // PATCHes of client_secret Auth0 applied, since the last check
	patchCount int
	stagedApps map[string]string // client ID -> name of the staged role that manages it
	keyApps    map[string]string // client ID -> name of the private_key_jwt role that manages it
	// certNext: the next key role rotates certificates (every other one does), unless
	// keysOnly: a scenario that needs a private_key_jwt role is being prepared.
	certNext, keysOnly bool
	problems           []string // found by the hook, reported on the test goroutine

	keysGenerated int            // private keys the engine generated
	served        map[string]int // Auth0 faults served, by kind
	servedIDs     map[int]bool   // the faults served, by simFault.id
	faultCov      map[string]int // the faults served, by class, and by class @ role state
	faultSeq      int            // the last simFault.id
	// stateOf is each application's role state when the step's action started, for the
	// coverage of the faults the hook serves.
	stateOf map[string]string
	// attachedAt is when Auth0 first had each credential attached (an applied PATCH).
	attachedAt map[string]time.Time

	// rotated holds the roles a manual rotate ran for during the step.
	rotated map[string]bool

	step      int
	history   []string
	digest    hash.Hash64
	counts    map[string]int
	exempted  int // schedule checks passed only thanks to a recorded failure
	realDelay int // faults that cost real time

	// loginCache holds the outcome of key logins, by key and set of attached credentials.
	loginCache map[uint64]bool
	keyPool    *simKeyPool // under mu
	// propagationWait is config's propagation_wait, fixed for the run.
	propagationWait time.Duration

	// What the run covered (sim_coverage_test.go), its scenarios, the order it tries them
	// in, how often each was tried; roles it created after the start.
	cov           simCoverage
	scenarios     []*simScenario
	scenarioOrder []int
	scenarioTries map[string]int
	created       int
	mayCreate     bool // the scenario running may create a role
	// schedOrder is the run's order of the schedule classes, which each kind's roles
	// cycle through (schedNext); importNext says whether the next role of a kind imports
	// its secret; appSeq numbers the applications.
	schedOrder []string
	schedNext  map[string]int
	importNext map[string]bool
	appSeq     int
	// withKeys: the run has private_key_jwt roles (and may create more); slow: the kind
	// of request of its one slow answer.
	withKeys bool
	slow     string
	// keyGrantNext: the next key role's application gets a Management API grant.
	keyGrantNext bool
	// suspended: the hook serves no fault (while the simulation creates a role);
	// inScenario: only faults aimed at an application (a scenario's) are served.
	suspended  bool
	inScenario bool
	// forceOption, if set, is the option the next manual rotate takes ("" none).
	forceOption *string

	// The root credentials (sim_root_test.go): the run's mode, the last root rotation
	// seen, the root steps taken, whether one ran since the last check, and how often
	// each root fault was armed.
	rootMode       string
	rootLast       time.Time
	rootSteps      int
	rootStepRan    bool
	rootFaultTries map[string]int

	// Drift (sim_drift_test.go): config's drift_check_period for the run; when the last
	// drift sweep and the last due jobs ran; what the step did that may make a drift
	// check fail or restart the sweeps (checkFaulted: the applications whose reads took an
	// Auth0 fault, "*" for the Management API login; sweepReset: a start or a config
	// write); the storage failures served by the last check; how far the log was read;
	// the key of the certificates "added in the Dashboard".
	driftPeriod  time.Duration
	lastSweep    time.Time
	lastRunDue   time.Time
	checkFaulted map[string]bool // under mu
	sweepReset   bool
	storageSeen  int
	logRead      int
	foreignCert  *simForeignCert
}

type simRole struct {
	name, clientID string
	imported       bool
	staged         bool // rotation_strategy=staged
	keys           bool // credential_type=private_key_jwt; k tracks its keys
	k              *simKeyRole
	// last is the time of the last Auth0 rotation of the role's application, or of the
	// role's creation before any.
	last time.Time
	// failedSince: a failure was seen recorded on the role since last.
	failedSince bool
	// pre is the role as stored before the current step, and inFlight whether it then had
	// an unresolved rotation write-ahead entry.
	pre      *model.RoleEntry
	inFlight bool

	// The last PATCH of a staged role's application: its secret, and the role's current
	// version and last cancelled stage as stored when it went out (invariant 10).
	lastPatch, lastPatchCancel string
	lastPatchCur               int

	// Drift (sim_drift_test.go): the role's drift_action; the drift Auth0 holds behind
	// Vault's back, until Vault took it back and the record of it is cleared; the secrets
	// ever set outside Vault; the credentials a drift detached; a credential added in the
	// Dashboard while Auth0 stores it; and, after it was removed, the version until which
	// Auth0's credential limit it caused may still be what the role's failure says.
	driftAction  string
	drift        *simDrift
	outside      map[string]bool
	driftKeys    map[string]bool
	foreign      string
	blockedUntil int
	// adopted: the versions seen holding a secret set outside Vault; driftWas: a drift
	// was under way when the step began.
	adopted  map[int]bool
	driftWas bool
	// walHeld: after the last step the role had a rotation write-ahead entry from its
	// current version (resolved or not), which keeps drift checks away.
	walHeld bool
}

type simRotation struct {
	client string
	at     time.Time
	manual string // client ID of the manual rotate running, if any
}

// simPatch is a PATCH of an application's client_secret that Auth0 applied, seen by the
// fault hook with the role and its staged secret as stored at that moment.
type simPatch struct {
	client, role string
	secret       string // what Auth0 holds after it
	at           time.Time
	manual       string // client ID of the manual rotate running, if any
	stored       *model.RoleEntry
	staged       *model.SecretEntry // the secret entry of stored.Staged, if any
	err          error
}

type simFault struct {
	kind  string // "rotate", "patch", "read" (any client read) or "verify" (a staged role's)
	phase emulator.Phase
	fault emulator.Fault
	desc  string
	class string // simFaultSpec.class
	id    int
	// client, if set, is the only application whose requests the fault is for.
	client string
}

func newSim(t *testing.T, seed uint64, days, roles int) *sim {
	s := &sim{
		t:             t,
		ctx:           context.Background(),
		seed:          seed,
		days:          days,
		nRoles:        roles,
		rng:           rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		base:          &logical.InmemStorage{},
		plan:          &simStoragePlan{walSeq: map[string]int{}, deleteTried: map[string]bool{}, hits: map[string]int{}},
		byName:        map[string]*simRole{},
		byClient:      map[string]*simRole{},
		rotations:     map[string]int{},
		rotated:       map[string]bool{},
		stagedApps:    map[string]string{},
		keyApps:       map[string]string{},
		served:        map[string]int{},
		servedIDs:     map[int]bool{},
		faultCov:      map[string]int{},
		stateOf:       map[string]string{},
		cov:           simCoverage{},
		scenarioTries: map[string]int{},
		schedNext:     map[string]int{},
		attachedAt:    map[string]time.Time{},
		digest:        fnv.New64a(),
		counts:        map[string]int{},
		loginCache:    map[uint64]bool{},

		rootFaultTries: map[string]int{},
		checkFaulted:   map[string]bool{},
	}
	s.logs = &simLog{secrets: map[string]bool{}}
	// A fixed start (not the wall clock), so that cron schedules replay.
	s.start = time.Date(2030, 1, 7, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.rng.IntN(24*60)) * time.Minute)
	s.clock = newFakeClock(s.start)
	s.clock.autoAdvance = true
	// The emulator keeps the virtual time too: it checks client assertions against it.
	s.emu = emulator.New(emulator.Options{Now: s.clock.Now, CNAMEAPIKey: testCNAMEKey})
	srv := httptest.NewServer(s.emu)
	t.Cleanup(srv.Close)
	s.emuURL = srv.URL
	mgmt := s.emu.AddClient(emulator.Client{ClientID: testMgmtID, Name: "Vault", Grants: map[string][]string{emulator.ManagementGrant: keyScopes}})
	s.logs.addSecret(mgmt.ClientSecret)
	s.emu.SetFaults(s.hook)

	s.store = &simStorage{inner: s.base, plan: s.plan}
	s.b = startBackendWithClock(t, s.store, logical.TestSystemView(), hclog.Trace, s.logs, s.clock)
	<-s.b.Sched.Load().Loaded
	s.watchKeyGeneration()

	wait := []string{"0s", "30s", "30s", "2m"}[s.rng.IntN(4)]
	s.propagationWait, _ = time.ParseDuration(wait)
	cfg := map[string]interface{}{
		"domain": s.emuURL, "client_id": testMgmtID, "client_secret": mgmt.ClientSecret,
		"rate_limit": 1000, "request_timeout": "1s", "propagation_wait": wait,
	}
	s.setupDrift(cfg)
	s.mustOK("config", cfg)
	s.setupRoot()
	// The roles' kinds, schedules and imports are spread evenly (the seed picks which role
	// gets what): a quarter private_key_jwt (-sim.keyroles), a third of the others staged,
	// half of those two imported, and each kind's roles cycling through the schedule
	// classes; roles created later continue the cycles.
	keyRoles := s.chooseKeyRoles(roles)
	s.withKeys = len(keyRoles) > 0
	s.slow = slowKind(seed, s.withKeys)
	s.scenarios = simScenarios(s.slow)
	var others []int
	for i := 0; i < roles; i++ {
		if !keyRoles[i] {
			others = append(others, i)
		}
	}
	staged := map[int]bool{}
	for _, k := range s.rng.Perm(len(others))[:(len(others)+1)/3] {
		staged[others[k]] = true
	}
	s.schedOrder = slices.Clone(simScheduleClasses)
	s.rng.Shuffle(len(s.schedOrder), func(i, j int) { s.schedOrder[i], s.schedOrder[j] = s.schedOrder[j], s.schedOrder[i] })
	s.importNext = map[string]bool{kindImmediate: s.rng.IntN(2) == 0, kindStaged: s.rng.IntN(2) == 0}
	for i := 0; i < roles; i++ {
		kind := kindImmediate
		switch {
		case keyRoles[i]:
			kind = kindKey
		case staged[i]:
			kind = kindStaged
		}
		s.addRole(kind, s.nextImport(kind), s.nextScheduleClass(kind))
	}
	s.scenarioOrder = s.rng.Perm(len(s.scenarios))
	s.check()
	return s
}

// simMaxCreated bounds the roles a run creates after its start (for scenarios that need a
// role that never held a secret, or only its imported one).
const simMaxCreated = 8

// addRole creates a role of kind for a new application, with a schedule of the class and,
// for a secret role, import_current_secret; no fault is served meanwhile.
func (s *sim) addRole(kind string, imported bool, class string) *simRole {
	s.t.Helper()
	i := len(s.roles)
	r := &simRole{name: fmt.Sprintf("r%02d", i), clientID: fmt.Sprintf("sim-app-%02d", s.appSeq), outside: map[string]bool{}, driftKeys: map[string]bool{}, adopted: map[int]bool{}}
	s.appSeq++
	grants := map[string][]string{testAPI: {}}
	granted := false
	if kind == kindKey {
		// Every other key role's application may obtain a Management API token (with no
		// scope), so that the login proving a new key gets a token, not a 403.
		granted = s.keyGrantNext
		s.keyGrantNext = !s.keyGrantNext
		if granted {
			grants[emulator.ManagementGrant] = []string{}
		}
	}
	app := s.emu.AddClient(emulator.Client{ClientID: r.clientID, Grants: grants})
	s.logs.addSecret(app.ClientSecret)
	data := s.scheduleFor(kind, class, i)
	data["client_id"] = r.clientID
	s.mu.Lock()
	switch kind {
	case kindKey:
		// private_key_jwt: switched off its secret at the first rotation.
		r.keys = true
		// Every other key role rotates self-signed mTLS certificates instead.
		r.k = &simKeyRole{secret: app.ClientSecret, keys: map[string]*simKey{}, granted: granted, cert: s.certNext && !s.keysOnly}
		s.certNext = !r.k.cert
		s.keyRoleData(data, r.k.cert)
		r.k.assertions, _ = data["allow_assertions"].(bool)
		s.keyApps[r.clientID] = r.name
	case kindStaged:
		r.staged = true
		data["rotation_strategy"] = model.StrategyStaged
		data["stage_period"] = s.randomStagePeriod()
		s.stagedApps[r.clientID] = r.name
	}
	s.suspended = true
	s.mu.Unlock()
	if imported && kind != kindKey {
		r.imported = true
		data["import_current_secret"] = true
	}
	if s.rng.IntN(2) == 0 {
		data["max_versions"] = 1 + s.rng.IntN(5)
	}
	s.driftActionFor(r, data)
	r.last = s.clock.Now()
	restore := s.plan.suspend()
	s.mustOK("roles/"+r.name, data)
	restore()
	s.mu.Lock()
	s.suspended = false
	s.mu.Unlock()
	s.roles = append(s.roles, r)
	s.byName[r.name] = r
	s.byClient[r.clientID] = r
	return r
}

// createRole adds a role of kind during the run, as a step of its own; nil once the run
// created simMaxCreated roles.
func (s *sim) createRole(kind string, imported bool) *simRole {
	if !s.mayCreate || s.created >= simMaxCreated || kind == kindKey && !s.keyRolesWanted() {
		return nil
	}
	s.created++
	class := s.nextScheduleClass(kind)
	r := s.addRole(kind, imported, class)
	s.counts["role create"]++
	s.sub(fmt.Sprintf("role create: %s (%s, %s, imported %v)", r.name, kind, class, r.imported))
	return r
}

// nextScheduleClass is the schedule class of the next role of kind.
func (s *sim) nextScheduleClass(kind string) string {
	n := s.schedNext[kind]
	s.schedNext[kind]++
	offset := slices.Index([]string{kindImmediate, kindStaged, kindKey}, kind) // kinds start apart
	return s.schedOrder[(n+offset)%len(s.schedOrder)]
}

// nextImport says whether the next initial secret role of kind imports its secret.
func (s *sim) nextImport(kind string) bool {
	v := s.importNext[kind]
	s.importNext[kind] = !v
	return v
}

func (s *sim) replayCommand() string {
	return fmt.Sprintf("go test -run TestSimulation -sim.seed=%d -sim.days=%d -sim.roles=%d .", s.seed, s.days, s.nRoles)
}

// fail stops the run with the seed, the command that replays it and the last steps.
func (s *sim) fail(format string, args ...interface{}) {
	s.t.Helper()
	s.t.Fatalf("seed=%d: step %d at %s: %s\nreplay: %s (add -sim.trace -v to log every step)\nlast steps:\n%s", s.seed, s.step,
		s.clock.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...), s.replayCommand(), strings.Join(s.history, "\n"))
}

func (s *sim) run() {
	end := s.start.Add(time.Duration(s.days) * 24 * time.Hour)
	// The scenarios that start from a role's first states run first, while the run's
	// roles are still in those states.
	for _, i := range s.scenarioOrder {
		if sc := s.scenarios[i]; s.earlyScenario(sc) && (sc.kind != kindKey || s.keyRolesWanted()) {
			s.step++
			s.record(s.runScenario(sc))
			s.check()
		}
	}
	for s.clock.Now().Before(end) {
		s.step++
		if s.step > 200*24*s.days+1000 {
			s.fail("the run does not advance its clock")
		}
		desc := s.randomStep()
		s.record(desc)
		s.check()
	}
	s.completeCoverage()
	s.completeRootCoverage()
	s.completeDriftCoverage()
	s.converge()
	s.finalCheck()
	s.mu.Lock()
	for class, n := range s.faultCov {
		if strings.Contains(class, " @ ") {
			s.cov.addN(covFaultStates, class, n)
		} else {
			s.cov.addN(covFaults, class, n)
		}
	}
	s.mu.Unlock()
	for class, n := range s.plan.hits {
		s.cov.addN(covStorage, class, n)
	}
}

// record keeps the step for failure reports and folds it into the run's digest.
func (s *sim) record(desc string) {
	line := fmt.Sprintf("  %4d %s %s", s.step, s.clock.Now().Format("01-02T15:04:05.000"), desc)
	s.history = append(s.history, line)
	if len(s.history) > 40 {
		s.history = s.history[1:]
	}
	if *simTrace {
		s.t.Log(line)
	}
	// The digest leaves out what differs between identical runs: secrets, write-ahead
	// IDs and the emulator's port, which error messages may quote.
	kind, _, _ := strings.Cut(desc, ":")
	fmt.Fprintf(s.digest, "%d %s %s|", s.step, s.clock.Now().Format(time.RFC3339Nano), kind)
}

func (s *sim) summary() string {
	keys := make([]string, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, s.counts[k]))
	}
	total := 0
	for _, n := range s.rotations {
		total += n
	}
	staged, keyRoles, keyVersions, created, deleted := 0, 0, 0, 0, 0
	stats := s.emu.Stats()
	for _, r := range s.roles {
		staged += btoi(r.staged)
		if r.keys {
			keyRoles++
			keyVersions += r.k.cur
			created += stats.CredentialsCreated[r.clientID]
			deleted += stats.CredentialsDeleted[r.clientID]
		}
	}
	s.mu.Lock()
	generated := s.keysGenerated
	var served []string
	for k, n := range s.served {
		served = append(served, fmt.Sprintf("%s=%d", k, n))
	}
	s.mu.Unlock()
	sort.Strings(served)
	parts = append(parts, "faults served: "+strings.Join(served, ","))
	return fmt.Sprintf("%d Auth0 rotations, %d PATCHes of %d staged roles, %d key versions of %d private_key_jwt roles (%d keys generated, %d credentials created, %d deleted), %d schedule checks passed on a recorded failure, %d slow answers; %s; digest=%016x",
		total, s.patchCount, staged, keyVersions, keyRoles, generated, created, deleted, s.exempted, s.realDelay, strings.Join(parts, " "), s.digest.Sum64())
}

// Steps.

// randomStep is one random step. Scenarios (sim_coverage_test.go) arm most faults and
// crashes where they matter; the random steps keep mixing them with everything else.
func (s *sim) randomStep() string {
	switch w := s.rng.IntN(100); {
	case w < 45:
		return s.stepAdvance()
	case w < 48:
		return s.stepDrift()
	case w < 52:
		return s.stepRootRotate()
	case w < 59:
		return s.stepRotate(s.roles[s.rng.IntN(len(s.roles))], true)
	case w < 71:
		return s.stepScenario()
	case w < 79:
		return s.stepAuth0Fault()
	case w < 83:
		return s.stepStorageFault()
	case w < 88:
		return s.stepCrash()
	case w < 90:
		s.counts["restart"]++
		s.restart()
		return "restart: clean"
	case w < 93:
		return s.stepRollback()
	case w < 95:
		return s.stepConfig()
	default:
		return s.stepRoleUpdate()
	}
}

func (s *sim) stepAdvance() string {
	var d time.Duration
	switch w := s.rng.IntN(100); {
	case w < 15:
		return s.stepAdvanceToDue()
	case w < 35:
		d = time.Duration(1+s.rng.IntN(120)) * time.Second
	case w < 90:
		d = time.Duration(1+s.rng.IntN(60)) * time.Minute
	default:
		d = time.Duration(60+s.rng.IntN(300)) * time.Minute
	}
	s.clock.Advance(d)
	n := s.runDue()
	s.counts["advance"]++
	return fmt.Sprintf("advance: %s, %d jobs", d, n)
}

// stepAdvanceToDue moves the clock exactly to when the first queued role (or the root
// rotation) falls due; not to a drift sweep, which the queue holds too.
func (s *sim) stepAdvanceToDue() string {
	d := time.Duration(0)
	if due, ok := s.nextDue(); ok && due.After(s.clock.Now()) {
		d = due.Sub(s.clock.Now())
	}
	s.clock.Advance(d)
	n := s.runDue()
	s.counts["advance"]++
	return fmt.Sprintf("advance: to the next due role (%s), %d jobs", d, n)
}

// nextDue is the earliest time a role or the root rotation is queued for.
func (s *sim) nextDue() (time.Time, bool) {
	q := s.b.Sched.Load().Queue
	next, found := q.Due(engine.RootQueueKey)
	for _, r := range s.roles {
		if due, ok := q.Due(r.name); ok && (!found || due.Before(next)) {
			next, found = due, true
		}
	}
	return next, found
}

func (s *sim) runDue() int {
	sch := s.b.Sched.Load()
	if sch == nil {
		s.fail("no scheduler running")
	}
	<-sch.Loaded
	now := s.clock.Now()
	s.noteStalls(sch, now)
	s.noteDueJobs(now)
	// A sweep due now runs among the jobs, and checks every role whose check fell due
	// since the last one (invariant 21).
	if due, ok := sch.Queue.Due(engine.DriftQueueKey); ok && !due.After(now) {
		s.lastSweep = now
	}
	s.lastRunDue = now
	return s.b.RunDueNow(s.ctx)
}

// noteReconciled counts the jobs that resolve the rotations in flight (a rollback, or a
// start), in the state their roles are in.
func (s *sim) noteReconciled() {
	now := s.clock.Now()
	for _, r := range s.roles {
		if r.inFlight {
			s.noteAct(r, now)
		}
	}
	s.snapshotStates(now)
}

// stepRotate rotates r by hand; a staged role, with options, randomly gets none,
// switch_now=true or cancel_staged=true.
func (s *sim) stepRotate(r *simRole, options bool) string {
	var data map[string]interface{}
	opt := ""
	switch {
	case s.forceOption != nil:
		opt = *s.forceOption
	case r.staged && options:
		// Cancels are likelier while a secret is staged, when they have something to do.
		cancel := 15
		if r.pre != nil && r.pre.Staged != nil {
			cancel = 40
		}
		switch w := s.rng.IntN(100); {
		case w < 25:
			opt = "switch_now"
		case w < 25+cancel:
			opt = "cancel_staged"
		}
	case r.keys && options:
		opt = s.keyRotateOption(r)
	}
	if opt != "" {
		data = map[string]interface{}{opt: true}
	}
	s.snapshotStates(s.clock.Now())
	s.noteAct(r, s.clock.Now())
	if s.driftActive(r) {
		r.drift.operated = true // a manual rotate during a drift is the operator's
	}
	if r.keys {
		s.beforeKeyRotate(r, opt)
	}
	name := r.name
	if opt != "" {
		name += " " + opt
	}
	s.mu.Lock()
	s.manual = r.clientID
	s.mu.Unlock()
	s.rotated[r.name] = true
	resp, err := s.request(logical.UpdateOperation, "rotate/"+r.name, data)
	s.mu.Lock()
	s.manual = ""
	s.mu.Unlock()
	s.counts["rotate"]++
	if r.keys {
		s.afterKeyRotate(r, opt, resp, err)
	}
	if err == nil && resp != nil && !resp.IsError() {
		version, _ := resp.Data["version"].(int)
		next, staged := resp.Data["next_version"].(int)
		cancelled, isCancel := resp.Data["cancelled_version"].(int)
		if !s.store.isCrashed() {
			role := s.storedRole(r.name)
			if role.CurrentVersion() != version {
				s.fail("rotate/%s answered version %d, but the role's current version is %d", name, version, role.CurrentVersion())
			}
			switch {
			case staged && (role.Staged == nil || role.Staged.Version != next):
				s.fail("rotate/%s answered next_version %d, but the role stores staged %+v", name, next, role.Staged)
			case !staged && role.Staged != nil && opt != "cancel_staged":
				s.fail("rotate/%s answered no next_version, but the role stores staged version %d", name, role.Staged.Version)
			case opt == "cancel_staged" && role.Staged != nil:
				s.fail("rotate/%s succeeded, but the role still stores staged version %d", name, role.Staged.Version)
			}
		}
		s.counts["rotate ok"]++
		if opt != "" {
			s.counts[opt+" ok"]++
		}
		switch {
		case staged:
			return fmt.Sprintf("rotate: %s -> version %d, next version %d", name, version, next)
		case isCancel:
			s.counts["cancelled"]++
			return fmt.Sprintf("rotate: %s -> version %d, cancelled version %d", name, version, cancelled)
		}
		return fmt.Sprintf("rotate: %s -> version %d", name, version)
	}
	return fmt.Sprintf("rotate: %s -> %s", name, outcome(resp, err))
}

func (s *sim) stepAuth0Fault() string {
	table := immediateFaults
	switch {
	case len(s.keyApps) > 0 && s.rng.IntN(3) == 0:
		table = keyFaults
	case len(s.stagedApps) > 0 && s.rng.IntN(3) == 0:
		table = stagedFaults
	}
	spec := pickFault(s, table)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.planned) >= 4 {
		return "auth0 fault: none armed, 4 still pending"
	}
	// Key roles' requests are rarer (hours apart): at most 2 of their faults wait, so
	// that they do not hold back the others.
	if keyKinds[spec.kind] && len(slices.DeleteFunc(slices.Clone(s.planned), func(p simFault) bool { return !keyKinds[p.kind] })) >= 2 {
		return "auth0 fault: none armed, 2 key faults still pending"
	}
	f := s.armFault(spec, "")
	s.planned = append(s.planned, f)
	s.counts["auth0 fault"]++
	return "auth0 fault: next " + f.desc
}

// simFaultSpec is a fault the simulation arms: the kind of request it is for (see hook),
// the phase, what Auth0 does instead (a 429's Retry-After is picked when armed), and its
// weight in its random generator.
type simFaultSpec struct {
	kind   string
	phase  emulator.Phase
	fault  emulator.Fault
	weight int
}

// simSlowAnswer is an answer slower than the run's 1s request_timeout. It costs a second
// of real time, so the random generators never arm it: one scenario a run does.
const simSlowAnswer = 1500 * time.Millisecond

// simFaultKinds names the requests each fault kind is for.
var simFaultKinds = map[string]string{
	"rotate": "rotate-secret", "read": "read of a client", "patch": "PATCH client_secret",
	"verify": "staged switch's verification read", "create": "POST credentials", "list": "GET credentials",
	"methods": "read of a key application", "attach": "PATCH attached keys", "delete": "DELETE credential",
	"token":      "key login (client assertion)",
	"root patch": "root: PATCH client_secret", "root token": "root: Management API login",
	"root create": "root: POST credentials", "root attach": "root: PATCH attached keys",
	"root list": "root: GET credentials", "root methods": "root: read of the application",
	"root delete": "root: DELETE credential",
}

// class names the fault the way the coverage counts it: 500 and 503 alike.
func (f simFaultSpec) class() string {
	var what string
	switch ff := f.fault; {
	case ff.Delay > 0:
		what = "applied, answer slower than request_timeout"
	case ff.Drop && f.kind == "token":
		what = "authenticated, then connection dropped"
	case ff.Drop:
		what = "applied, then connection dropped"
	case ff.Status == 429:
		what = "429"
	case ff.Status == 401:
		what = "401"
	case f.phase == emulator.AfterApply:
		what = "applied, then 5xx"
	case slices.Contains([]string{"rotate", "patch", "create", "attach", "delete"}, f.kind):
		what = "5xx before applying"
	default:
		what = "5xx"
	}
	return simFaultKinds[f.kind] + ": " + what
}

// armFault makes a fault of spec, for client's requests alone if client is set. The
// caller holds s.mu.
func (s *sim) armFault(spec simFaultSpec, client string) simFault {
	fault := spec.fault
	desc := spec.class()
	if fault.Status == 429 {
		fault.RetryAfter = 1 + s.rng.IntN(30)
		if !slices.Contains([]string{"rotate", "patch", "create", "attach"}, spec.kind) {
			fault.RetryAfter = 1 + s.rng.IntN(10)
		}
		desc = fmt.Sprintf("%s (Retry-After %ds)", desc, fault.RetryAfter)
	} else if fault.Status >= 500 {
		desc = fmt.Sprintf("%s (%d)", desc, fault.Status)
	}
	if client != "" {
		desc += " for " + client
	}
	s.faultSeq++
	return simFault{kind: spec.kind, phase: spec.phase, fault: fault, desc: desc, class: spec.class(), id: s.faultSeq, client: client}
}

// pickFault picks one of table by weight.
func pickFault(s *sim, table []simFaultSpec) simFaultSpec {
	total := 0
	for _, f := range table {
		total += f.weight
	}
	w := s.rng.IntN(total)
	for _, f := range table {
		if w < f.weight {
			return f
		}
		w -= f.weight
	}
	panic("unreachable")
}

// immediateFaults are the faults for rotate-secret, or for any read of a client.
var immediateFaults = []simFaultSpec{
	{"rotate", emulator.BeforeApply, emulator.Fault{Status: 500}, 18},
	{"rotate", emulator.BeforeApply, emulator.Fault{Status: 503}, 8},
	{"rotate", emulator.BeforeApply, emulator.Fault{Status: 429}, 14},
	{"rotate", emulator.AfterApply, emulator.Fault{Status: 500}, 18},
	{"rotate", emulator.AfterApply, emulator.Fault{Drop: true}, 18},
	{"rotate", emulator.AfterApply, emulator.Fault{Delay: simSlowAnswer}, 0},
	{"read", emulator.BeforeApply, emulator.Fault{Status: 500}, 10},
	{"read", emulator.BeforeApply, emulator.Fault{Status: 503}, 5},
	{"read", emulator.BeforeApply, emulator.Fault{Status: 429}, 5},
}

// stagedFaults are the faults for a staged switch: its PATCH, or its verification read.
var stagedFaults = []simFaultSpec{
	{"patch", emulator.BeforeApply, emulator.Fault{Status: 500}, 14},
	{"patch", emulator.BeforeApply, emulator.Fault{Status: 503}, 8},
	{"patch", emulator.BeforeApply, emulator.Fault{Status: 429}, 12},
	{"patch", emulator.AfterApply, emulator.Fault{Status: 500}, 18},
	{"patch", emulator.AfterApply, emulator.Fault{Drop: true}, 18},
	{"patch", emulator.AfterApply, emulator.Fault{Delay: simSlowAnswer}, 0},
	{"verify", emulator.BeforeApply, emulator.Fault{Status: 500}, 12},
	{"verify", emulator.BeforeApply, emulator.Fault{Status: 503}, 8},
	{"verify", emulator.BeforeApply, emulator.Fault{Status: 429}, 6},
}

// The prefixes under which the simulation fails storage writes, and deletes.
var (
	simStoragePrefixes = []string{"", model.RoleStoragePrefix, model.CredsStoragePrefix, model.SecretStoragePrefix, framework.WALPrefix}
	simDeletePrefixes  = []string{framework.WALPrefix, model.SecretStoragePrefix, ""}
)

// storageClass names failures of op under prefix for the coverage.
func storageClass(op, prefix string) string {
	if prefix == "" {
		return op + "s (any key)"
	}
	return op + "s under " + prefix
}

// storagePrefixOf is the first segment of a storage key, with its slash.
func storagePrefixOf(key string) string {
	if i := strings.Index(key, "/"); i >= 0 {
		return key[:i+1]
	}
	return key
}

func (s *sim) stepStorageFault() string {
	op, prefix := "put", simStoragePrefixes[s.rng.IntN(len(simStoragePrefixes))]
	if s.rng.IntN(5) == 0 {
		op, prefix = "delete", simDeletePrefixes[s.rng.IntN(len(simDeletePrefixes))]
	}
	n := 1 + s.rng.IntN(6)
	s.plan.setFailures(op, prefix, n)
	s.counts["storage fault"]++
	return fmt.Sprintf("storage fault: the next %d %ss under %q fail", n, op, prefix)
}

// stepCrash kills the backend at a storage operation of an action: that operation and
// every later one fail, the crashing write reaching storage or not, and a new backend
// starts on the same storage and clock, as after a crash of the plugin process.
func (s *sim) stepCrash() string {
	at := 1 + s.rng.IntN(20)
	torn := s.rng.IntN(2) == 0
	s.store.armCrash("", "", at, torn)
	var action, during string
	switch w := s.rng.IntN(10); {
	case w < 5:
		action, during = s.stepRotate(s.roles[s.rng.IntN(len(s.roles))], true), actionManual
	case w < 9:
		action, during = s.stepAdvanceToDue(), actionScheduled
	default:
		action, during = s.stepRollback(), actionRollback
	}
	crashed, where := s.disarmCrash(during)
	if !crashed {
		return fmt.Sprintf("crash: not reached (armed at op %d, %s) during %s", at, where, action)
	}
	return fmt.Sprintf("crash: at storage op %d, %s (write reached storage: %v) during %s; restarted", at, where, torn, action)
}

// What a crash interrupted.
const (
	actionManual    = "a manual rotate"
	actionScheduled = "a scheduled job"
	actionRollback  = "a rollback"
)

// disarmCrash ends an armed crash; if it happened during the action, it counts it and
// starts a new backend. It says where the crash happened, or how many operations ran.
func (s *sim) disarmCrash(action string) (bool, string) {
	crashed, ops, where := s.store.disarmCrash()
	if !crashed {
		return false, fmt.Sprintf("%d ops", ops)
	}
	s.counts["crash"]++
	s.cov.add(covCrashes, "during "+action)
	op, prefix, _ := strings.Cut(where, " ")
	s.cov.add(covCrashes, "at a "+op+" under "+prefix)
	if op == "put" || op == "delete" {
		if s.store.torn {
			s.cov.add(covCrashes, "the interrupted write reached storage")
		} else {
			s.cov.add(covCrashes, "the interrupted write was lost")
		}
	}
	s.restart()
	return true, "at a " + where
}

// restart abandons the backend and starts a new one on the same storage and clock, as
// Vault does when the plugin process is restarted.
func (s *sim) restart() {
	s.noteReconciled()
	s.sweepReset = true // the new backend sweeps from its start
	s.b.Cleanup(s.ctx)
	s.store = &simStorage{inner: s.base, plan: s.plan}
	s.b = startBackendWithClock(s.t, s.store, logical.TestSystemView(), hclog.Trace, s.logs, s.clock)
	<-s.b.Sched.Load().Loaded
	s.watchKeyGeneration()
}

// stepRollback is Vault's rollback manager handing the write-ahead entries to the backend
// ("immediate": old enough, whatever the real time).
func (s *sim) stepRollback() string {
	s.noteReconciled()
	resp, err := s.b.HandleRequest(s.ctx, &logical.Request{
		Operation: logical.RollbackOperation, Storage: s.store, Data: map[string]interface{}{"immediate": true},
	})
	s.counts["rollback"]++
	return "rollback: " + outcome(resp, err)
}

func (s *sim) stepConfig() string {
	rate := []float64{1000, 1000, 100, 10}[s.rng.IntN(4)]
	resp, err := s.request(logical.UpdateOperation, "config", map[string]interface{}{"rate_limit": rate, "request_timeout": "1s"})
	s.counts["config"]++
	s.sweepReset = true // a config write restarts the drift sweeps from its time
	return fmt.Sprintf("config: rate_limit %g -> %s", rate, outcome(resp, err))
}

func (s *sim) stepRoleUpdate() string {
	i := s.rng.IntN(len(s.roles))
	r := s.roles[i]
	var data map[string]interface{}
	switch w := s.rng.IntN(100); {
	case r.staged && w < 20:
		data = map[string]interface{}{"stage_period": s.randomStagePeriod()}
	case r.keys && w < 30:
		data = map[string]interface{}{"overlap_period": s.keyOverlapPeriod()}
	case w < 60:
		data = map[string]interface{}{"max_versions": 1 + s.rng.IntN(5)}
	default:
		data = s.scheduleFor(r.kind(), s.randomScheduleClass(), i)
	}
	resp, err := s.request(logical.UpdateOperation, "roles/"+r.name, data)
	s.counts["role write"]++
	return fmt.Sprintf("role write: %s %v -> %s", r.name, data, outcome(resp, err))
}

// randomScheduleClass picks a schedule class for a role write: a period (45%), a cron
// schedule (40%, a third of those with a rotation_window) or none (15%).
func (s *sim) randomScheduleClass() string {
	switch w := s.rng.IntN(100); {
	case w < 45:
		return schedPeriod
	case w < 72:
		return schedCron
	case w < 85:
		return schedWindow
	}
	return schedNone
}

// scheduleFor is a schedule of the class for role i of kind: periods or cron intervals
// of an hour or more (of 8 hours or more for private_key_jwt roles, so that key generation
// stays cheap). Cron roles get distinct minutes, so that no two roles fall due at the same
// instant (the queue would order them arbitrarily).
func (s *sim) scheduleFor(kind, class string, i int) map[string]interface{} {
	periods := []string{"1h", "90m", "2h", "3h", "4h", "6h", "8h", "12h"}
	hours := []string{"*", "*/2", "*/3", "*/6", "0,12"}
	if kind == kindKey {
		periods = []string{"8h", "12h", "12h", "24h"}
		hours = []string{"*/8", "0,12", "3,15", "4,20"}
	}
	spec := fmt.Sprintf("%d %s * * *", (7*i+3)%60, hours[s.rng.IntN(len(hours))])
	switch class {
	case schedPeriod:
		return map[string]interface{}{"rotation_period": periods[s.rng.IntN(len(periods))], "rotation_schedule": ""}
	case schedCron:
		return map[string]interface{}{"rotation_schedule": spec, "rotation_period": 0, "rotation_window": "0"}
	case schedWindow:
		return map[string]interface{}{"rotation_schedule": spec, "rotation_period": 0, "rotation_window": "1h"}
	}
	return map[string]interface{}{"rotation_period": 0, "rotation_schedule": ""}
}

// randomStagePeriod is a staged role's stage_period: shorter than an hour, the shortest
// period or schedule interval randomSchedule gives.
func (s *sim) randomStagePeriod() string {
	return []string{"30s", "5m", "10m", "20m", "30m", "45m", "59m"}[s.rng.IntN(7)]
}

// request runs one request through the backend as Vault routes it.
func (s *sim) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: s.store}
	if op == logical.UpdateOperation {
		if check, exists, _ := s.b.HandleExistenceCheck(s.ctx, req); check && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	return s.b.HandleRequest(s.ctx, req)
}

func (s *sim) mustOK(path string, data map[string]interface{}) {
	s.t.Helper()
	resp, err := s.request(logical.UpdateOperation, path, data)
	if err != nil || resp != nil && resp.IsError() {
		s.fail("write %s: %s", path, outcome(resp, err))
	}
}

func outcome(resp *logical.Response, err error) string {
	switch {
	case err != nil:
		code, _ := codedStatus(err)
		return fmt.Sprintf("error %d: %s", code, err)
	case resp != nil && resp.IsError():
		return "refused: " + resp.Error().Error()
	}
	return "ok"
}

// hook is the emulator's fault hook: it records every applied rotate-secret and PATCH of
// a client_secret, and serves the armed faults, each to the next request it matches
// (a private_key_jwt role's requests by their own kinds: keyRequestKind, and "token" for
// the login that proves a new key).
func (s *sim) hook(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if r.Header.Get(simProbeHeader) != "" {
		return nil // the simulation's own logins
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := "other"
	switch {
	case clientID == testMgmtID && (strings.HasPrefix(r.URL.Path, "/api/v2/") || r.URL.Path == "/oauth/token"):
		kind = s.rootRequestKind(r)
	case !strings.HasPrefix(r.URL.Path, "/api/v2/"):
		if r.URL.Path != "/oauth/token" || s.keyApps[clientID] == "" {
			return nil // token requests, but a key role's proof of a new key
		}
		kind = "token"
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/rotate-secret"):
		kind = "rotate"
	case s.keyApps[clientID] != "":
		kind = keyRequestKind(r)
	case r.Method == http.MethodPatch:
		kind = "patch"
	case r.Method == http.MethodGet && s.stagedApps[clientID] != "":
		kind = "verify"
	case r.Method == http.MethodGet:
		kind = "read"
	}
	switch {
	case kind == "rotate" && p == emulator.AfterApply:
		// The hook runs outside the emulator's lock, after the rotation was applied.
		secret, _ := s.emu.ClientSecret(clientID)
		s.logs.addSecret(secret)
		s.rotations[clientID]++
		s.events = append(s.events, simRotation{client: clientID, at: s.clock.Now(), manual: s.manual})
	case kind == "patch" && p == emulator.AfterApply:
		// The engine waits for this answer: storage holds what it held when the PATCH
		// left (invariants 7, 10, 11).
		secret, _ := s.emu.ClientSecret(clientID)
		s.logs.addSecret(secret)
		s.patchCount++
		ev := simPatch{client: clientID, role: s.stagedApps[clientID], secret: secret, at: s.clock.Now(), manual: s.manual}
		if ev.role != "" {
			ev.stored, ev.err = model.LoadRole(s.ctx, s.base, ev.role)
			if ev.err == nil && ev.stored != nil && ev.stored.Staged != nil {
				ev.staged, ev.err = model.LoadSecret(s.ctx, s.base, ev.role, nil, ev.stored.Staged.Version)
			}
		}
		s.patches = append(s.patches, ev)
	case kind == "attach" && p == emulator.AfterApply:
		// Outside the emulator's lock, as for rotate-secret.
		_, attached, _ := s.emu.Credentials(clientID)
		for _, id := range attached {
			if _, ok := s.attachedAt[id]; !ok {
				s.attachedAt[id] = s.clock.Now()
			}
		}
	case kind == "other":
		s.problems = append(s.problems, fmt.Sprintf("unexpected Management API request %s %s", r.Method, r.URL.Path))
	}
	if s.suspended {
		return nil
	}
	// Faults aimed at this application first, then the others.
	for _, aimed := range []bool{true, false} {
		if !aimed && s.inScenario {
			break
		}
		for i, f := range s.planned {
			if aimed != (f.client != "") || aimed && f.client != clientID || f.phase != p ||
				f.kind != kind && !(f.kind == "read" && (kind == "verify" || kind == "methods")) {
				continue
			}
			s.planned = append(s.planned[:i:i], s.planned[i+1:]...)
			s.noteCheckFault(kind, clientID)
			s.served[f.kind]++
			s.servedIDs[f.id] = true
			s.faultCov[f.class]++
			s.faultCov[f.class+" @ "+s.stateOf[clientID]]++
			if f.fault.Delay > 0 {
				s.realDelay++
			}
			fault := f.fault
			return &fault
		}
	}
	return nil
}

// Invariants.

func (s *sim) storedRole(name string) *model.RoleEntry {
	role, err := model.LoadRole(s.ctx, s.base, name)
	if err != nil || role == nil {
		s.fail("role %s: %v, %v", name, role, err)
	}
	return role
}

// pendingByRole reads the write-ahead entries from storage, by role.
func (s *sim) pendingByRole() map[string][]engine.PendingRotation {
	ids, err := framework.ListWAL(s.ctx, s.base)
	if err != nil {
		s.fail("listing write-ahead entries: %v", err)
	}
	out := map[string][]engine.PendingRotation{}
	for _, id := range ids {
		entry, err := framework.GetWAL(s.ctx, s.base, id)
		if err != nil || entry == nil {
			s.fail("write-ahead entry %s: %v, %v", id, entry, err)
		}
		if entry.Kind == engine.WALKindRoleWrite {
			continue // a role write whose storage failed twice; the next start repairs it
		}
		if entry.Kind != engine.WALKindRotation {
			s.fail("write-ahead entry %s of kind %q", id, entry.Kind)
		}
		w, err := engine.DecodeRotationWAL(entry.Data)
		if err != nil {
			s.fail("write-ahead entry %s: %v", id, err)
		}
		if s.byName[w.Role] == nil {
			s.fail("write-ahead entry %s for role %q, which does not exist", id, w.Role)
		}
		out[w.Role] = append(out[w.Role], engine.PendingRotation{ID: id, WAL: w})
	}
	return out
}

// check verifies invariants 1 to 4 (see TestSimulation) and keeps each role as stored for
// the next step's schedule check.
func (s *sim) check() {
	s.t.Helper()
	s.mu.Lock()
	events, problems, patches := s.events, s.problems, s.patches
	s.events, s.problems, s.patches = nil, nil, nil
	rotations := make(map[string]int, len(s.rotations))
	for k, v := range s.rotations {
		rotations[k] = v
	}
	s.mu.Unlock()
	if len(problems) > 0 {
		s.fail("%s", strings.Join(problems, "; "))
	}
	if leak := s.logs.leak(); leak != "" {
		s.fail("invariant 4: the log contains a secret the emulator issued: ...%s...", leak)
	}
	if leak := s.logs.keyLeak(); leak != "" {
		s.fail("invariant 16: the log contains private key material: %s", leak)
	}
	drift := s.driftStep()

	// 2. Schedule, and the part of 1 about whose application rotates.
	for _, ev := range events {
		r := s.byClient[ev.client]
		if r == nil {
			s.fail("invariant 1: Auth0 rotated %s, which no role manages", ev.client)
		}
		if r.staged {
			s.fail("invariant 6: Auth0 rotated (rotate-secret) the application of staged role %s at %s", r.name, ev.at.Format(time.RFC3339Nano))
		}
		if r.keys {
			s.fail("invariant 13: Auth0 rotated (rotate-secret) the application of private_key_jwt role %s at %s", r.name, ev.at.Format(time.RFC3339Nano))
		}
		if ev.manual != "" {
			if ev.manual != ev.client {
				s.fail("invariant 1: a manual rotate of %s's application also rotated %s (role %s)", s.byClient[ev.manual].name, ev.client, r.name)
			}
			r.last, r.failedSince = ev.at, false
			continue
		}
		if r.driftRotating() {
			// The rotation that takes back a drift (drift_action=rotate), or its retry:
			// as a manual rotate would (invariant 22 checks it).
			s.counts["drift rotation"]++
			r.last, r.failedSince = ev.at, false
			continue
		}
		pre := r.pre
		if !pre.Scheduled() {
			s.fail("invariant 2: role %s has no schedule, yet its application was rotated at %s without a manual rotate", r.name, ev.at.Format(time.RFC3339Nano))
		}
		if due := model.Later(pre.NextVaultRotation, pre.NextAttempt); ev.at.Before(due) {
			s.fail("invariant 2: role %s rotated at %s, before its stored due time %s (next_vault_rotation %s, next_attempt %s)",
				r.name, ev.at.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano), pre.NextVaultRotation.Format(time.RFC3339Nano), pre.NextAttempt.Format(time.RFC3339Nano))
		}
		if gate := pre.NextRotation(r.last); ev.at.Before(gate) {
			if !r.failedSince {
				s.fail("invariant 2: role %s rotated at %s, but its schedule (period %s, schedule %q) allows the next rotation after the one at %s only from %s, and no failure was recorded in between",
					r.name, ev.at.Format(time.RFC3339Nano), pre.RotationPeriod, pre.RotationSchedule, r.last.Format(time.RFC3339Nano), gate.Format(time.RFC3339Nano))
			}
			s.exempted++
		}
		r.last, r.failedSince = ev.at, false
	}
	for _, ev := range patches {
		s.checkPatch(ev)
	}

	stats := s.emu.Stats()
	pending := s.pendingByRole()
	crashed := s.store.isCrashed()
	for _, r := range s.roles {
		role := s.storedRole(r.name)
		var wals []engine.PendingRotation // unresolved: the engine never tried to delete them
		for _, p := range pending[r.name] {
			if r.keys {
				s.fail("invariant 13: private_key_jwt role %s has a write-ahead entry (for %s from version %d)", r.name, p.WAL.ClientID, p.WAL.BaseVersion)
			}
			if r.staged {
				s.fail("invariant 6: staged role %s has a write-ahead entry (for %s from version %d)", r.name, p.WAL.ClientID, p.WAL.BaseVersion)
			}
			if p.WAL.ClientID != r.clientID {
				s.fail("invariant 1: role %s has a write-ahead entry for application %s", r.name, p.WAL.ClientID)
			}
			if !s.plan.finished(p.ID) {
				wals = append(wals, p)
			}
		}
		s.driftBefore(r, role, pending[r.name], drift)
		if r.keys {
			s.checkKeyRole(r, role, stats, crashed)
		} else {
			s.checkRole(r, role, wals, rotations[r.clientID], stats.Rotations[r.clientID], stats.SecretPatches[r.clientID], crashed)
		}
		s.checkStaging(r, r.pre, role)
		s.driftAfter(r, role, len(wals) > 0, drift)
		if r.pre != nil {
			for _, v := range role.Versions {
				if v.Version > r.pre.CurrentVersion() && v.Source == model.SourceStaged {
					s.counts["switch verified "+v.Verified]++
				}
			}
		}
		if role.LastFailure != nil {
			r.failedSince = true
		}
		r.pre, r.inFlight = role, len(wals) > 0
		fmt.Fprintf(s.digest, "%s:%d/%d/%d/%d/%v/%v;", r.name, role.CurrentVersion(), len(wals), rotations[r.clientID], stats.SecretPatches[r.clientID], role.LastFailure != nil, role.Staged != nil)
	}
	clear(s.rotated)
	s.driftStepDone()
	s.checkRoot()
}

// checkPatch checks a PATCH of a client_secret that Auth0 applied, against storage as it
// was when the PATCH went out (invariants 6, 7, 10 and 11).
func (s *sim) checkPatch(ev simPatch) {
	s.t.Helper()
	r := s.byClient[ev.client]
	switch {
	case r == nil:
		s.fail("invariant 6: Auth0 applied a PATCH of the client_secret of %s, which no role manages", ev.client)
	case !r.staged:
		s.fail("invariant 6: Auth0 applied a PATCH of the client_secret of %s, whose role %s is not staged", ev.client, r.name)
	case ev.manual != "" && ev.manual != ev.client:
		s.fail("invariant 6: a manual rotate of %s's application PATCHed %s (role %s)", s.byClient[ev.manual].name, ev.client, r.name)
	case ev.err != nil:
		s.fail("reading role %s in the fault hook: %v", r.name, ev.err)
	}
	s.counts["patch"]++
	role := ev.stored
	at := ev.at.Format(time.RFC3339Nano)

	// 7. Only known secrets.
	switch {
	case role == nil || role.Staged == nil:
		s.fail("invariant 7: Auth0 took a PATCH of role %s's secret at %s, but the role stores no staged secret (role %+v)", r.name, at, role)
	case ev.staged == nil || ev.staged.Secret != ev.secret:
		s.fail("invariant 7: Auth0 took a PATCH of role %s's secret at %s that is not the secret entry of its staged version %d (entry %s)", r.name, at, role.Staged.Version, redact(ev.staged))
	case role.Staged.Version != role.CurrentVersion()+1:
		s.fail("invariant 9: role %s PATCHed staged version %d at %s, its current version is %d", r.name, role.Staged.Version, at, role.CurrentVersion())
	}

	// 10. One secret per switch.
	cancel := lastCancel(role)
	if r.lastPatch != "" && ev.secret != r.lastPatch && role.CurrentVersion() <= r.lastPatchCur && cancel == r.lastPatchCancel {
		s.fail("invariant 10: role %s PATCHed another secret at %s (staged version %d) than its last PATCH, with no switch committed (current version %d then and now) and no stage cancelled in between",
			r.name, at, role.Staged.Version, r.lastPatchCur)
	}
	if ev.secret != r.lastPatch {
		s.counts["patch new secret"]++
	}
	r.lastPatch, r.lastPatchCur, r.lastPatchCancel = ev.secret, role.CurrentVersion(), cancel

	// 11. Staged schedule: the switch.
	if due := model.Later(role.Staged.SwitchTime, role.NextAttempt); ev.manual == "" && ev.at.Before(due) && !r.driftRotating() {
		s.fail("invariant 11: role %s PATCHed its staged secret at %s without a manual rotate, before its stored due time %s (switch_time %s, next_attempt %s)",
			r.name, at, due.Format(time.RFC3339Nano), role.Staged.SwitchTime.Format(time.RFC3339Nano), role.NextAttempt.Format(time.RFC3339Nano))
	}
}

// lastCancel identifies the role's last cancelled stage, "" if none.
func lastCancel(role *model.RoleEntry) string {
	if role == nil || len(role.Cancelled) == 0 {
		return ""
	}
	c := role.Cancelled[len(role.Cancelled)-1]
	return fmt.Sprintf("%d@%s", c.Version, c.CancelledTime.Format(time.RFC3339Nano))
}

// checkStaging checks a secret staged during the step, pre being the role as stored before
// it and role after it (invariant 11: the publication).
func (s *sim) checkStaging(r *simRole, pre, role *model.RoleEntry) {
	s.t.Helper()
	st := role.Staged
	if st == nil || pre == nil || pre.Staged != nil && pre.Staged.Version == st.Version && pre.Staged.StagedTime.Equal(st.StagedTime) {
		return
	}
	s.counts["stage"]++
	if s.rotated[r.name] || r.driftRotating() {
		return // a manual rotate stages at once, and so does the one that takes back a drift
	}
	at := st.StagedTime.Format(time.RFC3339Nano)
	if !role.Scheduled() {
		s.fail("invariant 11: role %s has no schedule, yet a secret (version %d) was staged at %s without a manual rotate", r.name, st.Version, at)
	}
	stage := role.StagePeriodOrDefault()
	due := role.NextVaultRotation.Add(-stage)
	if pre.CurrentVersion() == role.CurrentVersion() {
		due = model.Later(due, pre.NextAttempt)
	}
	if st.StagedTime.Before(due) {
		s.fail("invariant 11: role %s staged version %d at %s, before its due time %s (next_vault_rotation %s, stage_period %s, next_attempt stored before %s)",
			r.name, st.Version, at, due.Format(time.RFC3339Nano), role.NextVaultRotation.Format(time.RFC3339Nano), stage, pre.NextAttempt.Format(time.RFC3339Nano))
	}
	if st.SwitchTime.Before(role.NextVaultRotation) || st.SwitchTime.Before(st.StagedTime.Add(stage)) {
		s.fail("invariant 11: role %s staged version %d at %s to switch at %s: before next_vault_rotation %s, or less than stage_period %s after publication",
			r.name, st.Version, at, st.SwitchTime.Format(time.RFC3339Nano), role.NextVaultRotation.Format(time.RFC3339Nano), stage)
	}
}

func (s *sim) checkRole(r *simRole, role *model.RoleEntry, wals []engine.PendingRotation, rotations, emuRotations, emuPatches int, crashed bool) {
	s.t.Helper()
	ctx := s.ctx
	cur := role.CurrentVersion()

	// 1. Exactly once.
	if rotations != emuRotations {
		s.fail("harness: saw %d rotations of %s, the emulator counts %d", rotations, r.clientID, emuRotations)
	}
	if role.Warning != "" || role.Blocked != "" {
		s.fail("invariant 1: role %s: warning %q, blocked %q", r.name, role.Warning, role.Blocked)
	}
	if role.ClientID != r.clientID {
		s.fail("role %s manages %s, want %s", r.name, role.ClientID, r.clientID)
	}
	made := cur
	if r.imported {
		made--
	}
	// A secret set outside Vault (drift) that a rotation whose outcome was unknown read
	// back is a "recovered" version no rotation of Vault's made (sim_drift_test.go).
	made -= s.adopted(r, role, made, rotations, len(wals))
	switch {
	case r.staged:
		// 6 (the write-ahead entries and rotate-secret were checked by the caller), 7, 10.
	case len(wals) == 0:
		if rotations != made {
			s.fail("invariant 1: role %s: Auth0 rotated its application %d times, but %d versions come from rotations (current version %d, imported %v) and no rotation is in flight; versions %s",
				r.name, rotations, made, cur, r.imported, describeVersions(role))
		}
	case len(wals) == 1:
		if rotations != made && rotations != made+1 {
			s.fail("invariant 1: role %s: Auth0 rotated its application %d times, %d versions come from rotations (current version %d, imported %v), one rotation in flight; versions %s",
				r.name, rotations, made, cur, r.imported, describeVersions(role))
		}
		w := wals[0]
		committed := cur == w.WAL.BaseVersion+1 && role.Current().WALID == w.ID
		if w.WAL.ClientID != r.clientID || (w.WAL.BaseVersion != cur && !committed) {
			s.fail("invariant 1: role %s at version %d has a rotation in flight for %s from version %d", r.name, cur, w.WAL.ClientID, w.WAL.BaseVersion)
		}
	default:
		s.fail("invariant 1: role %s has %d rotations in flight, at most one is allowed", r.name, len(wals))
	}

	// 3. Versions.
	if len(role.Versions) > role.MaxVersions {
		s.fail("invariant 3: role %s retains %d versions, max_versions is %d", r.name, len(role.Versions), role.MaxVersions)
	}
	secrets := map[int]*model.SecretEntry{}
	for i, v := range role.Versions {
		if i > 0 && v.Version != role.Versions[i-1].Version+1 {
			s.fail("invariant 3: role %s: versions not consecutive: %s", r.name, describeVersions(role))
		}
		switch v.Source {
		case model.SourceImport:
			if v.Version != 1 || !r.imported {
				s.fail("invariant 3: role %s: version %d has source import", r.name, v.Version)
			}
		case model.SourceRotate, model.SourceScheduled, model.SourceRecovered:
			if r.staged {
				s.fail("invariant 9: staged role %s: version %d has source %q", r.name, v.Version, v.Source)
			}
		case model.SourceStaged:
			if !r.staged || v.Verified == "" || v.StagedTime.IsZero() || v.WALID != "" {
				s.fail("invariant 9: role %s (staged %v): version %d has source staged, verified %q, staged at %s, write-ahead entry %q",
					r.name, r.staged, v.Version, v.Verified, v.StagedTime.Format(time.RFC3339Nano), v.WALID)
			}
		default:
			s.fail("invariant 3: role %s: version %d has source %q", r.name, v.Version, v.Source)
		}
		sec, err := model.LoadSecret(ctx, s.base, r.name, role, v.Version)
		if err != nil || sec == nil || sec.Version != v.Version || sec.Secret == "" || sec.WALID != v.WALID {
			s.fail("invariant 3: role %s: retained version %d (wal %q) has secret entry %+v, %v", r.name, v.Version, v.WALID, redact(sec), err)
		}
		secrets[v.Version] = sec
	}
	// 9. Staged versions.
	var staged *model.SecretEntry
	if st := role.Staged; st != nil {
		if !r.staged {
			s.fail("invariant 9: role %s is not staged, yet it stores staged version %d", r.name, st.Version)
		}
		if st.Version != cur+1 {
			s.fail("invariant 9: role %s stages version %d, its current version is %d", r.name, st.Version, cur)
		}
		var err error
		staged, err = model.LoadSecret(ctx, s.base, r.name, nil, st.Version)
		if err != nil || staged == nil || staged.Version != st.Version || staged.Source != model.SourceStaged || staged.Secret == "" {
			s.fail("invariant 9: role %s: staged version %d has secret entry %s, %v", r.name, st.Version, redact(staged), err)
		}
		s.logs.addSecret(staged.Secret)
	}
	creds, err := model.LoadCreds(ctx, s.base, r.name)
	if err != nil {
		s.fail("creds/%s: %v", r.name, err)
	}
	inFlight := len(wals) > 0
	switch {
	case creds == nil:
		if cur > 0 {
			s.fail("invariant 3: role %s has version %d but creds/%s holds nothing", r.name, cur, r.name)
		}
	case creds.Current.Version == cur && cur > 0:
		if creds.Current.Secret != secrets[cur].Secret {
			s.fail("invariant 3: creds/%s holds version %d with another secret than its secret entry", r.name, cur)
		}
		prev := secrets[cur-1]
		switch {
		case prev != nil && (creds.Previous == nil || creds.Previous.Version != cur-1 || creds.Previous.Secret != prev.Secret):
			s.fail("invariant 3: creds/%s does not hold retained version %d as previous (holds %+v)", r.name, cur-1, redact(creds.Previous))
		case prev == nil && creds.Previous != nil:
			s.fail("invariant 3: creds/%s holds version %d as previous, which the role does not retain (versions %s)", r.name, creds.Previous.Version, describeVersions(role))
		}
		switch next := creds.Next; {
		case staged != nil && (next == nil || next.Version != staged.Version || next.Secret != staged.Secret):
			s.fail("invariant 9: role %s stages version %d, but creds/%s does not publish it as next (holds %s)", r.name, staged.Version, r.name, redact(next))
		case staged == nil && next != nil:
			if next.Version != cur+1 || next.Source != model.SourceStaged || !r.staged {
				s.fail("invariant 9: role %s stages nothing, and creds/%s publishes as next %s", r.name, r.name, redact(next))
			}
			s.counts["stale next"]++
		}
	case staged != nil && creds.Current.Version == cur+1:
		// A switch whose commit was cut short between creds and the role: Auth0 took the
		// staged secret before creds was written (8 checks that it holds it).
		if creds.Current.Secret != staged.Secret {
			s.fail("invariant 3: creds/%s holds version %d ahead of the role (version %d), but not its staged secret", r.name, cur+1, cur)
		}
		s.counts["creds ahead of a switch"]++
	case inFlight && creds.Current.Version == cur+1:
		sec, err := model.LoadSecret(ctx, s.base, r.name, nil, cur+1)
		if err != nil || sec == nil || sec.Secret != creds.Current.Secret || sec.WALID != wals[0].ID {
			s.fail("invariant 3: creds/%s holds version %d ahead of the role (version %d), but no secret entry of the rotation in flight matches it", r.name, cur+1, cur)
		}
	default:
		s.fail("invariant 3: creds/%s holds version %d, the role's current version is %d (rotation in flight: %v)", r.name, creds.Current.Version, cur, inFlight)
	}
	if owner, err := model.LoadOwner(ctx, s.base, r.clientID); err != nil || owner != r.name {
		s.fail("invariant 3: %s is owned by %q (%v), want role %s", r.clientID, owner, err, r.name)
	}

	// 10. One secret per switch: Auth0's changes of the secret.
	auth0, _ := s.emu.ClientSecret(r.clientID)
	holdsStaged := staged != nil && auth0 == staged.Secret
	if want := made + btoi(holdsStaged); r.staged && emuPatches != want || !r.staged && emuPatches != 0 {
		s.fail("invariant 10: Auth0 changed the secret of role %s (staged %v) %d times by PATCH, want %d (current version %d, imported %v, Auth0 holds the staged secret: %v); versions %s",
			r.name, r.staged, emuPatches, want, cur, r.imported, holdsStaged, describeVersions(role))
	}

	// What an application reads, through the backend.
	if crashed || creds == nil {
		return
	}
	resp, err := s.request(logical.ReadOperation, "creds/"+r.name, nil)
	if err != nil || resp == nil || resp.IsError() {
		s.fail("invariant 3: reading creds/%s: %s", r.name, outcome(resp, err))
	}
	if resp.Data["client_secret"] != creds.Current.Secret || resp.Data["version"] != creds.Current.Version {
		s.fail("invariant 3: creds/%s served version %v, storage holds version %d", r.name, resp.Data["version"], creds.Current.Version)
	}
	// While Auth0 holds a secret set outside Vault (a drift, until Vault takes it back),
	// creds serve one it refuses: invariants 20 to 23 check that instead.
	drifted := s.driftActive(r)
	if !r.staged {
		if !inFlight && auth0 != creds.Current.Secret && !drifted {
			s.fail("invariant 1: no rotation of role %s is in flight, yet creds/%s serves version %d, which is not the secret Auth0 holds; versions %s", r.name, r.name, creds.Current.Version, describeVersions(role))
		}
		return
	}

	// 8. Zero downtime.
	if next, _ := resp.Data["next_client_secret"].(string); creds.Next != nil && next != creds.Next.Secret || creds.Next == nil && next != "" {
		s.fail("invariant 8: creds/%s served another next_client_secret than storage holds", r.name)
	}
	if drifted {
		return
	}
	if auth0 != creds.Current.Secret && !holdsStaged {
		s.fail("invariant 8: Auth0 holds neither the current secret (version %d) of staged role %s nor its staged one (%+v); versions %s", creds.Current.Version, r.name, role.Staged, describeVersions(role))
	}
	found := ""
	for _, k := range []string{"client_secret", "next_client_secret", "previous_client_secret"} {
		if secret, _ := resp.Data[k].(string); secret != "" && secret == auth0 {
			found = k
			break
		}
	}
	if found == "" {
		s.fail("invariant 8: a consumer of creds/%s (version %v, next version %v) finds no secret Auth0 holds; role stages %+v; versions %s",
			r.name, resp.Data["version"], resp.Data["next_version"], role.Staged, describeVersions(role))
	}
	s.counts["consumer uses "+found]++

}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func describeVersions(role *model.RoleEntry) string {
	var parts []string
	for _, v := range role.Versions {
		parts = append(parts, fmt.Sprintf("%d:%s@%s", v.Version, v.Source, v.CreatedTime.Format("01-02T15:04:05.000")))
	}
	failure := ""
	if f := role.LastFailure; f != nil {
		failure = fmt.Sprintf(", last failure %q x%d", f.Message, f.ConsecutiveFailures)
	}
	return "[" + strings.Join(parts, " ") + "]" + failure
}

// redact describes a secret entry without its secret.
func redact(sec *model.SecretEntry) string {
	if sec == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{version %d source %s wal %q secret set %v}", sec.Version, sec.Source, sec.WALID, sec.Secret != "")
}

// converge clears every fault and runs the clock forward until nothing is in flight, no
// role records a failure and no staged secret is past its switch time (invariant 5),
// checking after each round.
func (s *sim) converge() {
	s.mu.Lock()
	s.planned = nil
	s.mu.Unlock()
	s.plan.setFailures("", "", 0)
	for round := 0; ; round++ {
		pending := s.pendingByRole()
		var unsettled []string
		for _, r := range s.roles {
			switching := r.pre.Staged != nil && !s.clock.Now().Before(r.pre.Staged.SwitchTime)
			if len(pending[r.name]) > 0 || r.pre.LastFailure != nil || switching || r.keys && keyUnsettled(r.pre, s.clock.Now()) || s.driftUnsettled(r) {
				unsettled = append(unsettled, r.name)
			}
		}
		if why := s.rootUnsettled(); why != "" {
			unsettled = append(unsettled, "config ("+why+")")
		}
		if len(unsettled) == 0 {
			return
		}
		if round == 200 {
			s.fail("invariant 5: with faults cleared, roles %v still have a rotation in flight or a failure after %d rounds", unsettled, round)
		}
		s.step++
		if ops := s.settleDrift(); len(ops) > 0 {
			// A step of its own: the schedule checks (2, 17) know the due times before it.
			s.record("settle: " + strings.Join(ops, "; "))
			s.check()
			s.step++
		}
		rollback := s.stepRollback()
		var rotated []string
		for _, r := range s.roles {
			if s.driftActive(r) && r.drift.detected && r.driftAction == model.DriftActionRotate {
				continue // found: drift_action=rotate takes it back alone (invariant 22)
			}
			if !r.pre.Scheduled() && (r.pre.LastFailure != nil || len(pending[r.name]) > 0) {
				rotated = append(rotated, s.stepRotate(r, false))
			}
		}
		s.clock.Advance(30 * time.Minute)
		n := s.runDue()
		s.record(fmt.Sprintf("settle: unsettled %v; %s; %v; advance 30m, %d jobs", unsettled, rollback, rotated, n))
		s.check()
	}
}

// finalCheck: every role with a version serves the secret Auth0 holds, and it obtains a
// token (invariant 5).
func (s *sim) finalCheck() {
	s.finalRootCheck()
	for _, r := range s.roles {
		if r.keys {
			s.finalKeyCheck(r)
			continue
		}
		role := s.storedRole(r.name)
		if role.CurrentVersion() == 0 {
			continue
		}
		resp, err := s.request(logical.ReadOperation, "creds/"+r.name, nil)
		if err != nil || resp == nil || resp.IsError() {
			s.fail("invariant 5: reading creds/%s: %s", r.name, outcome(resp, err))
		}
		secret, _ := resp.Data["client_secret"].(string)
		if auth0, _ := s.emu.ClientSecret(r.clientID); secret != auth0 {
			s.fail("invariant 5: creds/%s serves version %v, not the secret Auth0 holds", r.name, resp.Data["version"])
		}
		if !s.authenticates(r.clientID, secret) {
			s.fail("invariant 5: the secret creds/%s serves does not obtain a token", r.name)
		}
	}
	if leak := s.logs.leak(); leak != "" {
		s.fail("invariant 4: the log contains a secret the emulator issued: ...%s...", leak)
	}
	if leak := s.logs.keyLeak(); leak != "" {
		s.fail("invariant 16: the log contains private key material: %s", leak)
	}
}

func (s *sim) authenticates(clientID, secret string) bool {
	return s.authenticatesTo(clientID, secret, testAPI)
}

// authenticatesTo reports whether clientID obtains a token for audience with secret.
func (s *sim) authenticatesTo(clientID, secret, audience string) bool {
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {secret}, "audience": {audience},
	}
	req, err := http.NewRequest(http.MethodPost, s.emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		s.fail("token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(simProbeHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.fail("token request: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// simLog is the engine's log: it finds any secret the emulator issued as it is written.
// Emulator secrets are 64 characters of [A-Za-z0-9_-], so each line's runs of those
// characters are looked up, rather than every secret searched for.
type simLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	secrets map[string]bool
	leaked  string
	// keyFrags are pieces of every private key the engine generated (keyFragment);
	// keyLeaked describes the first key material found in the log.
	keyFrags  []string
	keyLeaked string
}

// addKey registers a private key the engine generated.
func (l *simLog) addKey(privatePEM string) {
	if f := keyFragment(privatePEM); f != "" {
		l.mu.Lock()
		l.keyFrags = append(l.keyFrags, f)
		l.mu.Unlock()
	}
}

func (l *simLog) keyFragments() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.keyFrags)
}

func (l *simLog) keyLeak() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keyLeaked
}

func (l *simLog) addSecret(secret string) {
	if secret == "" {
		return
	}
	l.mu.Lock()
	l.secrets[secret] = true
	l.mu.Unlock()
}

func (l *simLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leaked == "" {
		l.leaked = findSecret(p, l.secrets)
	}
	if l.keyLeaked == "" {
		l.keyLeaked = findKeyMaterial(p, l.keyFrags)
	}
	return l.buf.Write(p)
}

func (l *simLog) leak() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leaked == "" {
		// Also secrets issued after a line that held them was written.
		l.leaked = findSecret(l.buf.Bytes(), l.secrets)
	}
	if l.leaked != "" {
		return l.leaked[:8] // enough to recognise it, not the secret
	}
	return ""
}

func findSecret(p []byte, secrets map[string]bool) string {
	const n = 64
	inAlphabet := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	for i := 0; i < len(p); {
		if !inAlphabet(p[i]) {
			i++
			continue
		}
		j := i
		for j < len(p) && inAlphabet(p[j]) {
			j++
		}
		for k := i; k+n <= j; k++ {
			if secrets[string(p[k:k+n])] {
				return string(p[k : k+n])
			}
		}
		i = j
	}
	return ""
}

// simStorage is the backend's storage: it fails writes as the storage plan says, and
// crashes at an armed operation. It lists write-ahead entries in the order they were
// written, not by their random IDs, so that a run replays: the engine must not depend on
// that order, and Vault's storage would give another.
type simStorage struct {
	inner logical.Storage
	plan  *simStoragePlan

	mu      sync.Mutex
	ops     int
	crashAt int // 0: not armed
	// The crash comes at the crashAt-th operation crashOp ("" any) under crashPrefix.
	crashOp, crashPrefix string
	matched              int
	torn                 bool
	crashed              bool
	crashedAt            string // "<op> <key prefix>"
}

var _ logical.Storage = (*simStorage)(nil)

const errSimCrash = storageError("simulated crash: the process is gone")

// armCrash crashes at the at-th operation op ("" any) under prefix.
func (s *simStorage) armCrash(op, prefix string, at int, torn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashAt, s.crashOp, s.crashPrefix, s.torn, s.ops, s.matched = at, op, prefix, torn, 0, 0
}

func (s *simStorage) disarmCrash() (crashed bool, ops int, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashAt = 0
	return s.crashed, s.ops, s.crashedAt
}

func (s *simStorage) isCrashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

// gate decides an operation: whether it reaches storage, and what it returns.
func (s *simStorage) gate(op, key string) (apply bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		return false, errSimCrash
	}
	s.ops++
	if s.crashAt > 0 && (s.crashOp == "" || op == s.crashOp) && strings.HasPrefix(key, s.crashPrefix) {
		s.matched++
		if s.matched >= s.crashAt {
			s.crashed, s.crashedAt = true, op+" "+storagePrefixOf(key)
			return s.torn && (op == "put" || op == "delete"), errSimCrash
		}
	}
	if s.plan.fails(op, key) {
		return false, errStorageDown
	}
	return true, nil
}

func (s *simStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if _, err := s.gate("list", prefix); err != nil {
		return nil, err
	}
	keys, err := s.inner.List(ctx, prefix)
	if err == nil && prefix == framework.WALPrefix {
		s.plan.orderWAL(keys)
	}
	return keys, err
}

func (s *simStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if _, err := s.gate("get", key); err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, key)
}

func (s *simStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	apply, err := s.gate("put", e.Key)
	if apply {
		if strings.HasPrefix(e.Key, framework.WALPrefix) {
			s.plan.noteWAL(strings.TrimPrefix(e.Key, framework.WALPrefix))
		}
		if perr := s.inner.Put(ctx, e); perr != nil {
			return perr
		}
	}
	return err
}

func (s *simStorage) Delete(ctx context.Context, key string) error {
	apply, err := s.gate("delete", key)
	if id, ok := strings.CutPrefix(key, framework.WALPrefix); ok && (apply || err == errStorageDown) {
		s.plan.noteDelete(id)
	}
	if apply {
		if derr := s.inner.Delete(ctx, key); derr != nil {
			return derr
		}
	}
	return err
}

// simStoragePlan is shared by the storages of successive backends: the storage failures
// to come, and the order write-ahead entries were written in.
type simStoragePlan struct {
	mu         sync.Mutex
	failOp     string
	failPrefix string
	failLeft   int
	walSeq     map[string]int
	// deleteTried holds the write-ahead entries the engine tried to delete, that is
	// found finished; one whose delete failed stays in storage, stale but harmless.
	deleteTried map[string]bool
	// hits counts the failures served, by storageClass; total all of them.
	hits  map[string]int
	total int
}

// served is how many failures the plan has served.
func (p *simStoragePlan) served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// suspend serves no failure until the returned func restores the plan.
func (p *simStoragePlan) suspend() func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	op, prefix, left := p.failOp, p.failPrefix, p.failLeft
	p.failLeft = 0
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.failOp, p.failPrefix, p.failLeft = op, prefix, left
	}
}

func (p *simStoragePlan) noteDelete(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deleteTried[id] = true
}

func (p *simStoragePlan) finished(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deleteTried[id]
}

func (p *simStoragePlan) setFailures(op, prefix string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failOp, p.failPrefix, p.failLeft = op, prefix, n
}

func (p *simStoragePlan) fails(op, key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failLeft > 0 && op == p.failOp && strings.HasPrefix(key, p.failPrefix) {
		p.failLeft--
		p.hits[storageClass(op, p.failPrefix)]++
		p.total++
		return true
	}
	return false
}

func (p *simStoragePlan) noteWAL(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.walSeq[id]; !ok {
		p.walSeq[id] = len(p.walSeq) + 1
	}
}

func (p *simStoragePlan) orderWAL(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.SliceStable(ids, func(i, j int) bool { return p.walSeq[ids[i]] < p.walSeq[ids[j]] })
}
