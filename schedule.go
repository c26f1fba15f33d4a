package auth0

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

const (
	// minRotationPeriod is short enough to watch a scheduled rotation in a test; in
	// production use hours or days (see README).
	minRotationPeriod = 5 * time.Second
	minRotationWindow = time.Minute
)

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

// scheduled reports whether the role rotates by itself.
func (r *roleEntry) scheduled() bool {
	return r.RotationPeriod > 0 || r.RotationSchedule != ""
}

// nextRotation is when the role is next due after a rotation (or creation) at from.
// Zero when the role has no schedule.
func (r *roleEntry) nextRotation(from time.Time) time.Time {
	switch {
	case r.RotationPeriod > 0:
		return from.Add(r.RotationPeriod).UTC()
	case r.RotationSchedule != "":
		sched, err := parseSchedule(r.RotationSchedule)
		if err != nil {
			// Stored schedules were validated on write.
			return time.Time{}
		}
		return sched.Next(from.UTC())
	}
	return time.Time{}
}
