package emulator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

const propID = "propagatingClientID0000000000000"

// propFixture is a fixture with a client that may get tokens for customAud,
// so that a token request tells plainly whether its secret was accepted.
func propFixture(t *testing.T, opts emulator.Options) *fixture {
	t.Helper()
	f := newFixture(t, opts)
	f.srv.AddClient(emulator.Client{ClientID: propID, ClientSecret: "prop-secret-0",
		Grants: map[string][]string{customAud: {"read:orders"}}})
	return f
}

// accepted sends n token requests for propID with secret and returns how many
// succeeded; anything but 200 or 401 fails the test.
func (f *fixture) accepted(secret string, n int) int {
	f.t.Helper()
	ok := 0
	for i := 0; i < n; i++ {
		status, body := f.postToken(ccForm(propID, secret, customAud), nil)
		switch status {
		case 200:
			ok++
		case 401:
		default:
			f.t.Fatalf("token with secret: %d %s", status, body)
		}
	}
	return ok
}

func (f *fixture) rotateProp(admin string) string {
	f.t.Helper()
	resp, body := f.api(http.MethodPost, "/api/v2/clients/"+propID+"/rotate-secret", admin, nil, "")
	expect(f.t, resp.StatusCode, body, 200, "")
	return decodeObject(f.t, body)["client_secret"].(string)
}

func (f *fixture) patchProp(admin, secret string) {
	f.t.Helper()
	resp, body := f.api(http.MethodPatch, "/api/v2/clients/"+propID, admin,
		strings.NewReader(`{"client_secret":"`+secret+`"}`), "application/json")
	expect(f.t, resp.StatusCode, body, 200, "")
}

func TestPropagationDelay(t *testing.T) {
	const n = 200 // P(all n requests see one state) = 2^-199
	changes := []struct {
		name   string
		change func(f *fixture, admin string) string
	}{
		{"rotate-secret", func(f *fixture, admin string) string { return f.rotateProp(admin) }},
		{"PATCH client_secret", func(f *fixture, admin string) string {
			f.patchProp(admin, "patched-secret-1")
			return "patched-secret-1"
		}},
	}
	for _, ch := range changes {
		t.Run(ch.name, func(t *testing.T) {
			clk := newStepClock()
			f := propFixture(t, emulator.Options{PropagationDelay: 30 * time.Second, Now: clk.Now, Seed: 42})
			admin := f.token(adminID, adminSecret)
			if got := f.accepted("prop-secret-0", 5); got != 5 {
				t.Fatalf("before any change the secret worked %d/5 times", got)
			}
			newSecret := ch.change(f, admin)

			// During the delay either secret works about half the time.
			clk.Advance(29 * time.Second)
			oldOK, newOK := f.accepted("prop-secret-0", n), f.accepted(newSecret, n)
			for name, got := range map[string]int{"old": oldOK, "new": newOK} {
				if got < n/4 || got > 3*n/4 {
					t.Errorf("%s secret accepted %d/%d times during propagation, want about half", name, got, n)
				}
			}
			if f.accepted("never-the-secret", 20) != 0 {
				t.Fatal("a wrong secret was accepted during propagation")
			}

			// Once the delay is over, only the new secret works.
			clk.Advance(time.Second)
			if got := f.accepted("prop-secret-0", 50); got != 0 {
				t.Fatalf("old secret accepted %d/50 times after the delay", got)
			}
			if got := f.accepted(newSecret, 50); got != 50 {
				t.Fatalf("new secret accepted %d/50 times after the delay", got)
			}
			if s, _ := f.srv.ClientSecret(propID); s != newSecret {
				t.Fatalf("ClientSecret = %q", s)
			}
		})
	}
}

func TestPropagationChainedAndSetter(t *testing.T) {
	clk := newStepClock()
	f := propFixture(t, emulator.Options{Now: clk.Now, Seed: 7})
	admin := f.token(adminID, adminSecret)

	// Default 0: the new secret is the only one at once.
	s1 := f.rotateProp(admin)
	if f.accepted("prop-secret-0", 20) != 0 || f.accepted(s1, 20) != 20 {
		t.Fatal("a rotation without propagation delay did not switch at once")
	}

	f.srv.SetPropagationDelay(10 * time.Second)
	s2 := f.rotateProp(admin) // replaces s1 at t=0
	clk.Advance(5 * time.Second)
	f.patchProp(admin, "s3-patched") // replaces s2 at t=5
	f.patchProp(admin, "s3-patched") // unchanged: no new propagation
	// t=5: s1, s2 and s3 all propagate; each is seen by about a third.
	for _, s := range []string{s1, s2, "s3-patched"} {
		if got := f.accepted(s, 300); got < 50 || got > 150 {
			t.Errorf("t=5s: %q accepted %d/300 times, want about 100", s[:8], got)
		}
	}
	if f.accepted("prop-secret-0", 20) != 0 {
		t.Error("a secret replaced without delay came back")
	}
	// t=10: s1 has propagated away; s2 and s3 half each.
	clk.Advance(5 * time.Second)
	if f.accepted(s1, 50) != 0 {
		t.Error("s1 still accepted after its delay")
	}
	for _, s := range []string{s2, "s3-patched"} {
		if got := f.accepted(s, 200); got < 50 || got > 150 {
			t.Errorf("t=10s: %q accepted %d/200 times, want about 100", s[:8], got)
		}
	}
	// Shrinking the delay ends propagation sooner.
	f.srv.SetPropagationDelay(time.Second)
	if f.accepted(s2, 50) != 0 || f.accepted("s3-patched", 50) != 50 {
		t.Error("SetPropagationDelay(1s) did not end a propagation older than 1s")
	}
	if st := f.srv.Stats(); st.Rotations[propID] != 2 || st.SecretPatches[propID] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestPropagationSeed checks that a seed makes the random choices repeatable.
func TestPropagationSeed(t *testing.T) {
	run := func(seed uint64) string {
		clk := newStepClock()
		f := propFixture(t, emulator.Options{PropagationDelay: time.Minute, Now: clk.Now, Seed: seed})
		f.patchProp(f.token(adminID, adminSecret), "the-new-secret")
		var b strings.Builder
		for i := 0; i < 64; i++ {
			if f.accepted("the-new-secret", 1) == 1 {
				b.WriteByte('n')
			} else {
				b.WriteByte('o')
			}
		}
		return b.String()
	}
	a, b, c := run(99), run(99), run(100)
	if a != b {
		t.Fatalf("same seed, different outcomes:\n%s\n%s", a, b)
	}
	if a == c {
		t.Fatalf("different seeds, same 64 outcomes: %s", a)
	}
}
