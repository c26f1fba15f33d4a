package auth0

import "time"

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
)

// secretVersion is one client secret the role has held. Versions live inside the role
// entry, so that a rotation is a single atomic storage write (nothing can be half-stored)
// and creds is served from a single storage read.
type secretVersion struct {
	Version     int       `json:"version"`
	Secret      string    `json:"secret"`
	CreatedTime time.Time `json:"created_time"`
	Source      string    `json:"source"`
}

// latest is the current version, nil before the first rotation or import.
func (r *roleEntry) latest() *secretVersion {
	if len(r.Versions) == 0 {
		return nil
	}
	return r.Versions[len(r.Versions)-1]
}

// version returns retained version n, or nil.
func (r *roleEntry) version(n int) *secretVersion {
	for _, v := range r.Versions {
		if v.Version == n {
			return v
		}
	}
	return nil
}

// addVersion appends secret as the next version and drops the oldest beyond max_versions.
// Numbers continue from the latest one and are never reused.
func (r *roleEntry) addVersion(secret, source string, now time.Time) *secretVersion {
	next := 1
	if latest := r.latest(); latest != nil {
		next = latest.Version + 1
	}
	v := &secretVersion{Version: next, Secret: secret, CreatedTime: now.UTC(), Source: source}
	r.Versions = append(r.Versions, v)
	r.trimVersions()
	return v
}

// trimVersions enforces max_versions, oldest first.
func (r *roleEntry) trimVersions() {
	if excess := len(r.Versions) - r.MaxVersions; excess > 0 {
		r.Versions = append([]*secretVersion(nil), r.Versions[excess:]...)
	}
}
