package model

import (
	"testing"
	"time"
)

func TestNextRotation(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	cases := []struct {
		name     string
		role     RoleEntry
		from     time.Time
		wantNext string
	}{
		{"period", RoleEntry{RotationPeriod: 90 * time.Minute}, utc("2026-03-01T10:00:00Z"), "2026-03-01T11:30:00Z"},
		{"period across a month end", RoleEntry{RotationPeriod: 24 * time.Hour}, utc("2026-02-28T12:00:00Z"), "2026-03-01T12:00:00Z"},
		{"daily at 03:00", RoleEntry{RotationSchedule: "0 3 * * *"}, utc("2026-03-01T02:59:59Z"), "2026-03-01T03:00:00Z"},
		{"exactly at the scheduled time goes to the next one", RoleEntry{RotationSchedule: "0 3 * * *"}, utc("2026-03-01T03:00:00Z"), "2026-03-02T03:00:00Z"},
		{"31st skips short months", RoleEntry{RotationSchedule: "0 0 31 * *"}, utc("2026-01-31T00:00:01Z"), "2026-03-31T00:00:00Z"},
		{"29 February waits for a leap year", RoleEntry{RotationSchedule: "0 0 29 2 *"}, utc("2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z"},
		{"month end to next month", RoleEntry{RotationSchedule: "30 23 * * *"}, utc("2026-04-30T23:30:00Z"), "2026-05-01T23:30:00Z"},
		{"year end", RoleEntry{RotationSchedule: "0 0 1 1 *"}, utc("2026-12-31T23:59:00Z"), "2027-01-01T00:00:00Z"},
		{"weekday names", RoleEntry{RotationSchedule: "0 3 * * SUN"}, utc("2026-11-25T00:00:00Z"), "2026-11-29T03:00:00Z"},
		{"steps", RoleEntry{RotationSchedule: "*/15 * * * *"}, utc("2026-11-25T10:07:00Z"), "2026-11-25T10:15:00Z"},
		// The schedule is read in UTC whatever the zone of the time it starts from: 03:30 in
		// Paris is 02:30 UTC, so 03:00 UTC that same day is next (read in Paris time it
		// would be the next day).
		{"UTC regardless of the input zone", RoleEntry{RotationSchedule: "0 3 * * *"}, time.Date(2026, 1, 10, 3, 30, 0, 0, paris), "2026-01-10T03:00:00Z"},
		{"no schedule", RoleEntry{}, utc("2026-03-01T10:00:00Z"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.role.NextRotation(tc.from)
			if tc.wantNext == "" {
				if !got.IsZero() {
					t.Fatalf("next = %v, want none", got)
				}
				return
			}
			if !got.Equal(utc(tc.wantNext)) || got.Location() != time.UTC {
				t.Fatalf("next = %v, want %s (UTC)", got, tc.wantNext)
			}
		})
	}
}

func TestMissedWindow(t *testing.T) {
	due := time.Date(2026, 5, 31, 3, 0, 0, 0, time.UTC)
	role := RoleEntry{RotationSchedule: "0 3 * * *", RotationWindow: time.Hour, NextVaultRotation: due}
	cases := []struct {
		now    time.Time
		missed bool
	}{
		{due, false},
		{due.Add(59 * time.Minute), false},
		{due.Add(time.Hour), false}, // the window's last instant still counts
		{due.Add(time.Hour + time.Second), true},
	}
	for _, tc := range cases {
		if got := role.MissedWindow(tc.now); got != tc.missed {
			t.Errorf("missedWindow at due+%v = %v, want %v", tc.now.Sub(due), got, tc.missed)
		}
	}
	noWindow := RoleEntry{RotationSchedule: "0 3 * * *", NextVaultRotation: due}
	if noWindow.MissedWindow(due.Add(100 * time.Hour)) {
		t.Error("a schedule without a window can never miss it")
	}
	period := RoleEntry{RotationPeriod: time.Hour, NextVaultRotation: due}
	if period.MissedWindow(due.Add(100 * time.Hour)) {
		t.Error("a period has no window")
	}
	// After a missed window the next due time is the next scheduled one, not now.
	if next := role.NextRotation(due.Add(2 * time.Hour)); !next.Equal(due.Add(24 * time.Hour)) {
		t.Errorf("after a missed window, next = %v", next)
	}
}

func TestRetryDelay(t *testing.T) {
	base, limit := 10*time.Second, 5*time.Minute
	cases := []struct {
		failures int
		full     time.Duration
	}{
		{1, 10 * time.Second},
		{2, 20 * time.Second},
		{3, 40 * time.Second},
		{5, 160 * time.Second},
		{6, 5 * time.Minute},
		{60, 5 * time.Minute},
	}
	for _, tc := range cases {
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := RetryDelay(tc.failures, base, limit, RandomJitter)
			if d < tc.full/2 || d > tc.full {
				t.Fatalf("retryDelay(%d) = %v, want within [%v, %v]", tc.failures, d, tc.full/2, tc.full)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("retryDelay(%d) has no jitter: %d distinct values in 200", tc.failures, len(seen))
		}
	}
}
