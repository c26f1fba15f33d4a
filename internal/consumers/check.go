package consumers

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Checker watches what Auth0 requires of one application and whether each consumer's
// copy holds it:
//
//   - Lead (staged secrets, keys): Auth0 starts requiring a credential only after the
//     engine published it, so every copy must already hold it then, as current
//     (client_secret, key_id) or next (next_client_secret);
//   - otherwise (immediate rotation, where Auth0 requires the new secret the moment it
//     exists): a copy may hold the dead secret for at most LagBound.
type Checker struct {
	// Keys: the copies are of a private_key_jwt role (key_id), else of a client secret.
	Keys bool
	// Lead: Auth0 requires a credential only after the engine published it.
	Lead bool
	// Required is what Auth0 accepts now: the secret, or the attached key ids.
	Required func() (secret string, attached []string)
	// LagBound is how long c may hold a dead credential after a change at Auth0, made by
	// a manual rotation or by the engine on its own.
	LagBound  func(c Consumer, manual bool) time.Duration
	Consumers []Consumer

	required string
	stale    map[Consumer]staleSince
	maxLag   map[Consumer]time.Duration
	// published is when each credential first appeared in the engine's answer (Observe),
	// copied when it first appeared in each consumer's copy.
	published map[string]time.Time
	copied    map[Consumer]map[string]time.Time
	// Changes counts the changes at Auth0 seen.
	Changes int
	// Problems are what the checks found.
	Problems []string
}

// staleSince is when a copy stopped holding what Auth0 accepts, and whether a manual
// rotation did it.
type staleSince struct {
	at     time.Time
	manual bool
}

// Holds reports whether copy holds what Auth0 accepts.
func (k *Checker) Holds(copy map[string]string) bool {
	if copy == nil {
		return false
	}
	secret, attached := k.Required()
	if k.Keys {
		return slices.Contains(attached, copy["key_id"])
	}
	return secret != "" && (copy["client_secret"] == secret || copy["next_client_secret"] == secret)
}

// credentials are the credentials an answer or a copy holds: its secrets, or its key id.
func (k *Checker) credentials(data map[string]string) []string {
	var out []string
	fields := []string{"client_secret", "next_client_secret"}
	if k.Keys {
		fields = []string{"key_id"}
	}
	for _, f := range fields {
		if v := data[f]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (k *Checker) init() {
	if k.stale == nil {
		k.stale, k.maxLag = map[Consumer]staleSince{}, map[Consumer]time.Duration{}
		k.published, k.copied = map[string]time.Time{}, map[Consumer]map[string]time.Time{}
	}
}

// Observe records an answer of the engine read directly at now: when each credential was
// published, to measure how long each consumer took to copy it.
func (k *Checker) Observe(now time.Time, data map[string]any) {
	k.init()
	for _, cred := range k.credentials(renderAll(data)) {
		if _, ok := k.published[cred]; !ok {
			k.published[cred] = now
		}
	}
}

// Check compares every copy with what Auth0 accepts at now; manual says a manual rotation
// just ran (a change seen now is its doing).
func (k *Checker) Check(now time.Time, manual bool) {
	k.init()
	for _, c := range k.Consumers {
		if k.copied[c] == nil {
			k.copied[c] = map[string]time.Time{}
		}
		for _, cred := range k.credentials(c.Copy()) {
			if _, ok := k.copied[c][cred]; !ok {
				k.copied[c][cred] = now
			}
		}
	}
	secret, attached := k.Required()
	if req := secret + strings.Join(attached, ","); req != k.required {
		if k.required != "" {
			k.Changes++
		}
		k.required = req
		// A copy still on the credential before this change: its lag for that change
		// ends here, and one for this change starts.
		for c, st := range k.stale {
			k.endLag(c, st, now)
			k.stale[c] = staleSince{now, manual}
		}
	}
	for _, c := range k.Consumers {
		if k.Holds(c.Copy()) {
			if st, ok := k.stale[c]; ok {
				k.endLag(c, st, now)
				delete(k.stale, c)
			}
			continue
		}
		if _, ok := k.stale[c]; !ok && c.Copy() != nil {
			k.stale[c] = staleSince{now, manual}
			if k.Lead {
				k.Problems = append(k.Problems, fmt.Sprintf("at %s Auth0 requires a credential %s's copy does not hold (it holds version %s)",
					now.UTC().Format(time.RFC3339Nano), c.Name(), c.Copy()["version"]))
			}
		}
	}
}

func (k *Checker) endLag(c Consumer, st staleSince, now time.Time) {
	lag := now.Sub(st.at)
	if bound := k.LagBound(c, st.manual); !k.Lead && lag > bound {
		k.Problems = append(k.Problems, fmt.Sprintf("%s held a dead secret for %s after a %s rotation at %s, more than its own delay (%s)",
			c.Name(), lag.Round(time.Millisecond), map[bool]string{true: "manual", false: "scheduled"}[st.manual], st.at.UTC().Format(time.RFC3339Nano), bound))
	}
	k.maxLag[c] = max(k.maxLag[c], lag)
}

// Finish adds to Problems every consumer error, a VSO that did not see static
// credentials, and too few changes at Auth0; it returns a line per consumer: writes and
// longest lag.
func (k *Checker) Finish(minChanges int) []string {
	var lines []string
	for _, c := range k.Consumers {
		if errs := c.Errors(); len(errs) > 0 {
			k.Problems = append(k.Problems, fmt.Sprintf("%s reported %d errors, the first: %s", c.Name(), len(errs), errs[0]))
		}
		if v, ok := c.(*VSO); ok && v.NotStatic {
			k.Problems = append(k.Problems, fmt.Sprintf("%s did not see static credentials: it never re-syncs the path", c.Name()))
		}
		if c.Copy() == nil {
			k.Problems = append(k.Problems, fmt.Sprintf("%s never wrote a copy", c.Name()))
		}
		lines = append(lines, fmt.Sprintf("%s: %d writes, copied %s after publication, longest lag %s", c.Name(), c.Writes(), k.CopyDelay(c), k.maxLag[c].Round(time.Millisecond)))
	}
	if k.Changes < minChanges {
		k.Problems = append(k.Problems, fmt.Sprintf("Auth0's credential changed only %d times: the run does not exercise rotations", k.Changes))
	}
	return lines
}

// Delay is how long a consumer took to copy the credentials published while it ran.
type Delay struct {
	N         int
	Max, Mean time.Duration
}

func (d Delay) String() string {
	if d.N == 0 {
		return "(nothing published)"
	}
	return fmt.Sprintf("max %s mean %s (%d credentials)", d.Max.Round(time.Millisecond), d.Mean.Round(time.Millisecond), d.N)
}

// CopyDelay measures, over the credentials published after the first one (Observe), how
// long c took to copy each.
func (k *Checker) CopyDelay(c Consumer) Delay {
	var d Delay
	var sum time.Duration
	first := time.Time{}
	for _, at := range k.published {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	for cred, at := range k.published {
		copiedAt, ok := k.copied[c][cred]
		if !ok || !at.After(first) {
			continue
		}
		delay := max(copiedAt.Sub(at), 0)
		d.N++
		sum += delay
		d.Max = max(d.Max, delay)
	}
	if d.N > 0 {
		d.Mean = sum / time.Duration(d.N)
	}
	return d
}
