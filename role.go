package auth0

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/robfig/cron/v3"
)

// A role's storage, modelled on KV v2: metadata apart from secret material.
//
//	roles/<name>            roleEntry: definition, rotation state, version metadata; no secret
//	creds/<name>            credsEntry: exactly what creds/<name> serves (one read, seal-wrapped)
//	secrets/<name>/<n>      secretEntry: the secret of retained version n (seal-wrapped)
//	owners/<client_id>      ownerEntry: which role owns an Auth0 application
//
// Role reads, versions/<name>, lists and the queue rebuild read roles/ only; creds reads
// creds/<name> only. A rotation writes the secret entry, then the creds entry, then the
// role entry (the commit point); the write-ahead entry of the rotation (recovery.go) lets
// reconciliation finish a commit that a crash cut short.
const (
	roleStoragePrefix   = "roles/"
	credsStoragePrefix  = "creds/"
	secretStoragePrefix = "secrets/"
	ownerStoragePrefix  = "owners/"
)

// roleLayout is the storage layout roles are written in. Layout 0 is v0.1.0's, which kept
// every secret inside the role entry; such roles are moved to this layout on the active
// node at start (upgradeRole), and read as they are until then.
const roleLayout = 2

// How a version came to be, recorded with it and shown by versions/:name.
const (
	sourceRotate    = "rotate"    // auth0/rotate/:name
	sourceScheduled = "scheduled" // the rotation schedule
	sourceImport    = "import"    // import_current_secret on role creation
	sourceRecovered = "recovered" // read back from Auth0 after an interrupted rotation
)

const (
	defaultMaxVersions = 10
	maxMaxVersions     = 100

	// minRotationPeriod is short enough to watch a scheduled rotation in a test; in
	// production use hours or days (see README).
	minRotationPeriod = 5 * time.Second
	minRotationWindow = time.Minute
	// scheduleHorizon bounds how far ahead a rotation_schedule's next time may lie: a
	// schedule that does not fire within it (a day that no month has) is refused.
	scheduleHorizon = 5 * 366 * 24 * time.Hour
)

// roleEntry binds a Vault name to one Auth0 application: its definition, its rotation
// state and the metadata of its retained versions. It holds no secret.
type roleEntry struct {
	Layout int `json:"layout,omitempty"`

	ClientID         string        `json:"client_id"`
	RotationPeriod   time.Duration `json:"rotation_period,omitempty"`
	RotationSchedule string        `json:"rotation_schedule,omitempty"`
	RotationWindow   time.Duration `json:"rotation_window,omitempty"`
	MaxVersions      int           `json:"max_versions"`

	Versions          []*versionMeta `json:"versions,omitempty"`
	LastVaultRotation time.Time      `json:"last_vault_rotation,omitempty"`
	NextVaultRotation time.Time      `json:"next_vault_rotation,omitempty"`
	failureState
	// Warning is something the operator should act on, e.g. a scope to grant.
	Warning string `json:"warning,omitempty"`
	// Blocked says why the engine will not rotate this role until the operator acts (a
	// schedule that never fires, an application another role owns); empty otherwise.
	Blocked string `json:"blocked,omitempty"`
}

// versionMeta describes one retained version; its secret is in secrets/<name>/<n>.
type versionMeta struct {
	Version     int       `json:"version"`
	CreatedTime time.Time `json:"created_time"`
	Source      string    `json:"source"`
	// WALID is the write-ahead entry of the rotation that produced the version.
	WALID string `json:"wal_id,omitempty"`
	// LegacySecret is where layout 0 kept the secret; empty once upgraded.
	LegacySecret string `json:"secret,omitempty"`
}

// secretEntry is one version's secret material.
type secretEntry struct {
	Version     int       `json:"version"`
	Secret      string    `json:"secret"`
	CreatedTime time.Time `json:"created_time"`
	Source      string    `json:"source"`
	// WALID ties the secret to the rotation that produced it: reconciliation finds a
	// secret Auth0 returned and Vault stored before a crash cut the commit short.
	WALID string `json:"wal_id,omitempty"`
}

// credsEntry is what creds/<name> serves, kept whole in one entry so that the hot path
// is one storage read whatever the history: the current and previous secrets, and the
// role's schedule state as creds reports it.
type credsEntry struct {
	ClientID          string        `json:"client_id"`
	RotationPeriod    time.Duration `json:"rotation_period,omitempty"`
	RotationSchedule  string        `json:"rotation_schedule,omitempty"`
	NextVaultRotation time.Time     `json:"next_vault_rotation,omitempty"`
	NextAttempt       time.Time     `json:"next_attempt,omitempty"`
	Current           *secretEntry  `json:"current"`
	Previous          *secretEntry  `json:"previous,omitempty"`
}

// ownerEntry records which role owns an Auth0 application on this mount.
type ownerEntry struct {
	Role string `json:"role"`
}

// rotationFailure records why the last rotation attempt failed; cleared by a success.
type rotationFailure struct {
	Time                time.Time `json:"time"`
	Message             string    `json:"message"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
}

// failureState is what a rotation target (a role, or the root credentials) records about
// failed attempts: the last failure and when the next attempt is due.
type failureState struct {
	LastFailure *rotationFailure `json:"last_failure,omitempty"`
	NextAttempt time.Time        `json:"next_attempt,omitempty"`
}

// fail records a failure at now and sets the next attempt after the backoff delay.
func (f *failureState) fail(msg string, now time.Time, backoff func(failures int) time.Duration) {
	failures := 1
	if f.LastFailure != nil {
		failures = f.LastFailure.ConsecutiveFailures + 1
	}
	f.LastFailure = &rotationFailure{Time: now.UTC(), Message: msg, ConsecutiveFailures: failures}
	f.NextAttempt = now.Add(backoff(failures)).UTC()
}

func (f *failureState) succeed() {
	f.LastFailure = nil
	f.NextAttempt = time.Time{}
}

// retryDelay is the wait before retry number failures (1, 2, …): base doubled per failure,
// capped, with jitter (jitter(n) returns a number in [0, n)) so that roles failing together
// do not retry together. The result lies in [d/2, d], d being the capped exponential delay.
func retryDelay(failures int, base, limit time.Duration, jitter func(int64) int64) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	half := d / 2
	return half + time.Duration(jitter(int64(half)+1))
}

// randomJitter is retryDelay's jitter outside tests.
func randomJitter(n int64) int64 { return rand.Int64N(n) }

func (r *roleEntry) current() *versionMeta {
	if len(r.Versions) == 0 {
		return nil
	}
	return r.Versions[len(r.Versions)-1]
}

// currentVersion is the number of the current version, 0 before the first one.
func (r *roleEntry) currentVersion() int {
	if v := r.current(); v != nil {
		return v.Version
	}
	return 0
}

// version returns retained version n, or nil.
func (r *roleEntry) version(n int) *versionMeta {
	for _, v := range r.Versions {
		if v.Version == n {
			return v
		}
	}
	return nil
}

// clone copies the role so that a change can be prepared and dropped if storing it fails.
// Version metadata is never changed once written, so the copy shares it.
func (r *roleEntry) clone() *roleEntry {
	cp := *r
	cp.Versions = append([]*versionMeta(nil), r.Versions...)
	if r.LastFailure != nil {
		f := *r.LastFailure
		cp.LastFailure = &f
	}
	return &cp
}

// addVersion appends the next version's metadata and returns it and the versions that
// max_versions now drops, oldest first. Numbers continue from the current one and are
// never reused.
func (r *roleEntry) addVersion(source, walID string, now time.Time) (*versionMeta, []*versionMeta) {
	v := &versionMeta{Version: r.currentVersion() + 1, CreatedTime: now.UTC(), Source: source, WALID: walID}
	r.Versions = append(r.Versions, v)
	return v, r.trimVersions()
}

// trimVersions enforces max_versions, oldest first, and returns what it dropped.
func (r *roleEntry) trimVersions() []*versionMeta {
	excess := len(r.Versions) - r.MaxVersions
	if excess <= 0 {
		return nil
	}
	dropped := append([]*versionMeta(nil), r.Versions[:excess]...)
	r.Versions = append([]*versionMeta(nil), r.Versions[excess:]...)
	return dropped
}

// legacy reports whether the role is still in layout 0, secrets inside.
func (r *roleEntry) legacy() bool { return r.Layout < roleLayout }

// credsMeta copies into c the role's state that creds reports.
func (r *roleEntry) credsMeta(c *credsEntry) {
	c.ClientID = r.ClientID
	c.RotationPeriod = r.RotationPeriod
	c.RotationSchedule = r.RotationSchedule
	c.NextVaultRotation = r.NextVaultRotation
	c.NextAttempt = r.NextAttempt
}

// nextChange is when a consumer of creds should read again: the next rotation, or while
// rotations fail, the next attempt, whichever is later. Zero when the role has no schedule.
func (c *credsEntry) nextChange() time.Time {
	if c.RotationPeriod == 0 && c.RotationSchedule == "" {
		return time.Time{}
	}
	return later(c.NextVaultRotation, c.NextAttempt)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// scheduled reports whether the role rotates by itself.
func (r *roleEntry) scheduled() bool {
	return r.RotationPeriod > 0 || r.RotationSchedule != ""
}

// dueTime is when the scheduler should next look at the role: its next rotation, or after
// a failure the next attempt if that is later. Zero when it must not be queued: no
// schedule, blocked, or a due time that is missing or absurd (left by an older build).
func (r *roleEntry) dueTime(now time.Time) time.Time {
	if !r.scheduled() || r.Blocked != "" || !plausibleDue(r.NextVaultRotation, now) {
		return time.Time{}
	}
	return later(r.NextVaultRotation, r.NextAttempt)
}

// scheduleProblem says why the role's schedule cannot be queued, "" when it can: a
// rotation_schedule that never fires, or a stored due time no schedule can produce (both
// possible only in entries written by older builds).
func (r *roleEntry) scheduleProblem(now time.Time) string {
	switch {
	case !r.scheduled():
		return ""
	case r.RotationSchedule != "" && r.nextRotation(now).IsZero():
		return fmt.Sprintf("rotation_schedule %q never fires; the engine does not rotate this role until it is written with a schedule that does", r.RotationSchedule)
	case !plausibleDue(r.NextVaultRotation, now):
		return fmt.Sprintf("the stored next rotation time (%s) is not one its schedule can produce; the engine does not rotate this role until its schedule is written again", r.NextVaultRotation.Format(time.RFC3339))
	}
	return ""
}

// plausibleDue rejects due times no schedule can produce: zero, or outside the years in
// which this engine can have run or a schedule can reach.
func plausibleDue(t, now time.Time) bool {
	return !t.IsZero() && t.Year() >= 2020 && t.Before(now.Add(2*scheduleHorizon))
}

// nextRotation is when the role is next due after a rotation (or creation) at from.
// Zero when the role has no schedule, or its schedule never fires.
func (r *roleEntry) nextRotation(from time.Time) time.Time {
	switch {
	case r.RotationPeriod > 0:
		return from.Add(r.RotationPeriod).UTC()
	case r.RotationSchedule != "":
		sched, err := parseSchedule(r.RotationSchedule)
		if err != nil {
			return time.Time{}
		}
		next := sched.Next(from.UTC())
		if next.IsZero() || next.Sub(from) > scheduleHorizon {
			return time.Time{}
		}
		return next
	}
	return time.Time{}
}

// missedWindow reports whether a schedule's rotation window has passed for the due time.
func (r *roleEntry) missedWindow(now time.Time) bool {
	return r.RotationSchedule != "" && r.RotationWindow > 0 && now.After(r.NextVaultRotation.Add(r.RotationWindow))
}

// cronParser accepts exactly the standard five fields (minute hour day-of-month month
// day-of-week); no seconds, no descriptors such as @daily, no time zone prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// parsedSchedules caches parsed schedules by spec: creds reads compute the next times of a
// schedule on the hot path.
var parsedSchedules sync.Map

// parseSchedule parses a rotation_schedule. Schedules are always evaluated in UTC.
func parseSchedule(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if sched, ok := parsedSchedules.Load(spec); ok {
		return sched.(cron.Schedule), nil
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("schedules are evaluated in UTC; remove the time zone prefix")
	}
	if strings.HasPrefix(spec, "@") {
		return nil, errors.New(`descriptors such as "@daily" are not accepted; use the five cron fields, e.g. "0 0 * * *"`)
	}
	if n := len(strings.Fields(spec)); n != 5 {
		return nil, fmt.Errorf(`expected 5 fields (minute hour day-of-month month day-of-week), got %d; e.g. "0 3 * * SUN"`, n)
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%w; expected 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * SUN\"", err)
	}
	parsedSchedules.Store(spec, sched)
	return sched, nil
}

// validateSchedule parses spec and checks that it fires within scheduleHorizon of now.
func validateSchedule(spec string, now time.Time) error {
	if _, err := parseSchedule(spec); err != nil {
		return err
	}
	if (&roleEntry{RotationSchedule: spec}).nextRotation(now).IsZero() {
		return fmt.Errorf("it never fires within the next %d years (no date matches it, e.g. 30 February); give a schedule that matches a real date", int(scheduleHorizon.Hours()/24/366))
	}
	return nil
}

// Storage.

func roleKey(name string) string    { return roleStoragePrefix + name }
func credsKey(name string) string   { return credsStoragePrefix + name }
func secretsDir(name string) string { return secretStoragePrefix + name + "/" }
func secretKey(name string, version int) string {
	return secretsDir(name) + strconv.Itoa(version)
}

func ownerKey(clientID string) string { return ownerStoragePrefix + url.PathEscape(clientID) }

// getJSON reads key into v; found is false when there is no such entry.
func getJSON(ctx context.Context, s logical.Storage, key string, v any) (found bool, err error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if entry == nil {
		return false, nil
	}
	if err := entry.DecodeJSON(v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}

func putJSON(ctx context.Context, s logical.Storage, key string, v any) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

func deleteKey(ctx context.Context, s logical.Storage, key string) error {
	if err := s.Delete(ctx, key); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// loadRole reads a role's metadata; nil when there is no such role.
func loadRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	role := new(roleEntry)
	found, err := getJSON(ctx, s, roleKey(name), role)
	if !found || err != nil {
		return nil, err
	}
	return role, nil
}

func saveRole(ctx context.Context, s logical.Storage, name string, role *roleEntry) error {
	return putJSON(ctx, s, roleKey(name), role)
}

// loadCreds reads what creds/<name> serves; nil when the role has no secret (or is not
// upgraded yet).
func loadCreds(ctx context.Context, s logical.Storage, name string) (*credsEntry, error) {
	c := new(credsEntry)
	found, err := getJSON(ctx, s, credsKey(name), c)
	if !found || err != nil || c.Current == nil {
		return nil, err
	}
	return c, nil
}

func saveCreds(ctx context.Context, s logical.Storage, name string, c *credsEntry) error {
	return putJSON(ctx, s, credsKey(name), c)
}

// loadSecret reads the secret of version n of a role, also from a role not yet upgraded
// (role may be nil when the caller has not read it).
func loadSecret(ctx context.Context, s logical.Storage, name string, role *roleEntry, n int) (*secretEntry, error) {
	if role != nil && role.legacy() {
		if v := role.version(n); v != nil && v.LegacySecret != "" {
			return &secretEntry{Version: v.Version, Secret: v.LegacySecret, CreatedTime: v.CreatedTime, Source: v.Source}, nil
		}
	}
	sec := new(secretEntry)
	found, err := getJSON(ctx, s, secretKey(name, n), sec)
	if !found || err != nil {
		return nil, err
	}
	return sec, nil
}

func saveSecret(ctx context.Context, s logical.Storage, name string, sec *secretEntry) error {
	return putJSON(ctx, s, secretKey(name, sec.Version), sec)
}

// buildCreds assembles what creds serves from the role and its secret entries: used where
// creds/<name> is missing (a role not yet upgraded) and to write it anew.
func buildCreds(ctx context.Context, s logical.Storage, name string, role *roleEntry) (*credsEntry, error) {
	cur := role.current()
	if cur == nil {
		return nil, nil
	}
	c := &credsEntry{}
	role.credsMeta(c)
	var err error
	if c.Current, err = loadSecret(ctx, s, name, role, cur.Version); err != nil {
		return nil, err
	}
	if c.Current == nil {
		return nil, fmt.Errorf("role %q: the secret of its current version %d is missing from storage", name, cur.Version)
	}
	if role.version(cur.Version-1) != nil {
		if c.Previous, err = loadSecret(ctx, s, name, role, cur.Version-1); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// deleteRoleData removes everything stored for a role name except its metadata and
// ownership claim: what creds serves, then every version's secret.
func deleteRoleData(ctx context.Context, s logical.Storage, name string) error {
	if err := deleteKey(ctx, s, credsKey(name)); err != nil {
		return err
	}
	keys, err := s.List(ctx, secretsDir(name))
	if err != nil {
		return fmt.Errorf("listing the secrets of role %q: %w", name, err)
	}
	for _, k := range keys {
		if err := deleteKey(ctx, s, secretsDir(name)+k); err != nil {
			return err
		}
	}
	return nil
}

// rewriteCreds writes what creds serves anew from the role and its secret entries.
func rewriteCreds(ctx context.Context, s logical.Storage, name string, role *roleEntry) error {
	creds, err := buildCreds(ctx, s, name, role)
	if err != nil || creds == nil {
		return err
	}
	return saveCreds(ctx, s, name, creds)
}

// applyMaxVersions brings creds and the secret entries in line with a changed max_versions:
// creds no longer serves a previous version that is not retained, and dropped versions'
// secrets are deleted.
func applyMaxVersions(ctx context.Context, s logical.Storage, name string, role *roleEntry, dropped []*versionMeta) error {
	if err := rewriteCreds(ctx, s, name, role); err != nil {
		return err
	}
	for _, v := range dropped {
		if err := deleteKey(ctx, s, secretKey(name, v.Version)); err != nil {
			return err
		}
	}
	return nil
}

func loadOwner(ctx context.Context, s logical.Storage, clientID string) (string, error) {
	var o ownerEntry
	found, err := getJSON(ctx, s, ownerKey(clientID), &o)
	if !found || err != nil {
		return "", err
	}
	return o.Role, nil
}

func saveOwner(ctx context.Context, s logical.Storage, clientID, role string) error {
	return putJSON(ctx, s, ownerKey(clientID), &ownerEntry{Role: role})
}
