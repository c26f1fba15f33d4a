// Package consumers models how the programs that bring Vault secrets to applications
// decide when to read a path and what they keep of it: Vault Secrets Operator, the Secrets
// Store CSI driver's Vault provider, External Secrets Operator and Vault Agent. Each model
// is written from the consumer's documented (and, where undocumented, source-observed)
// rules, not from its code; see docs/CONSUMERS.md for the rules and their sources.
//
// A model is a state machine driven by its caller: Due says when the consumer next reads,
// Step performs what it does then. The same models run against the in-process engine on a
// virtual clock (the root package's tests) and against a real Vault in real time
// (integration tests).
package consumers

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// Read reads the consumer's path once: the response's data, or the error it answered.
type Read func() (map[string]any, error)

// Consumer is one consumer of one path.
type Consumer interface {
	// Name describes the consumer and its settings.
	Name() string
	// Due is when the consumer next reads; zero when it never will by itself.
	Due() time.Time
	// Step does what the consumer does at now, which is at or after Due.
	Step(now time.Time, read Read)
	// Copy is what the consumer last wrote for the application (a Kubernetes Secret's
	// data, a volume's files), by key; nil before its first write.
	Copy() map[string]string
	// Writes counts the writes of Copy (for VSO with rolloutRestartTargets, restarts).
	Writes() int
	// Errors are the errors the consumer reported, each with its time.
	Errors() []string
}

// render is the text a consumer writes for a value of the response: a string as it is,
// anything else as JSON (3600, true, ["a"]), as VSO, the CSI provider and ESO do.
func render(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// renderAll renders every key of data.
func renderAll(data map[string]any) map[string]string {
	out := make(map[string]string, len(data))
	for k, v := range data {
		out[k] = render(v)
	}
	return out
}

// asInt reads an integer field the way a strict consumer does (VSO from 0.8): a JSON
// integer (json.Number, or an integer Go type in-process), absent or null as 0; a string
// or a fraction is an error.
func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return x.Int64()
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
}

// sameData reports whether a and b hold the same keys and values, leaving out skip.
func sameData(a, b map[string]string, skip map[string]bool) bool {
	count := func(m map[string]string) int {
		n := 0
		for k := range m {
			if !skip[k] {
				n++
			}
		}
		return n
	}
	if count(a) != count(b) {
		return false
	}
	for k, v := range a {
		if skip[k] {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// state is what every model keeps: when it reads next, its copy, and its errors.
type state struct {
	due    time.Time
	copy   map[string]string
	writes int
	errs   errorLog
}

func (s *state) Due() time.Time          { return s.due }
func (s *state) Copy() map[string]string { return s.copy }
func (s *state) Writes() int             { return s.writes }
func (s *state) Errors() []string        { return s.errs }

// store writes files as the copy if they differ from it, skipping keys in skip.
func (s *state) store(files map[string]string, skip map[string]bool) {
	if s.copy == nil || !sameData(s.copy, files, skip) {
		s.copy = files
		s.writes++
	}
}

// errorLog collects a consumer's errors.
type errorLog []string

func (l *errorLog) add(now time.Time, format string, args ...any) {
	*l = append(*l, now.UTC().Format(time.RFC3339Nano)+": "+fmt.Sprintf(format, args...))
}

// Keys lists m's keys, sorted, for messages.
func Keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
