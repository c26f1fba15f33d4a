package auth0

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// Native fuzz targets over the request data of every path family (issue 19). Each input
// is a role name segment and the request data as Vault delivers it to a plugin: a JSON
// body decoded with json.Number (so any type may stand where a field expects another),
// or a query string / form body. Every input runs through HandleRequest on a fresh
// backend over a copy of a fixture's storage, wired to the Auth0 emulator, and must:
//
//   - not panic (a panic fails the target: nothing here recovers it);
//   - not answer 5xx: a request the engine refuses is a 4xx that says why;
//   - store nothing when refused: storage is byte-identical to before; reads store
//     nothing at all;
//   - never show a secret (the Management API secret, any stored client secret or key,
//     a client_secret written in the request) in a response, an error or the log, except
//     where creds/ serves it.
//
// `go test` runs the seeds below and testdata/fuzz/<Target>/; scripts/fuzz.sh fuzzes
// each target for FUZZTIME.

// fuzzT0 is the virtual time every fixture starts at.
var fuzzT0 = time.Date(2031, time.March, 4, 12, 0, 0, 0, time.UTC)

const (
	fuzzApp3ID = "app-3"
	fuzzApp4ID = "app-4"
	fuzzApp5ID = "app-5"
	fuzzApp6ID = "app-6" // owned by no role: free for a role create
	fuzzApp7ID = "app-7"
	// Placeholders a seed puts in request data: the fuzzer mutates around them.
	fuzzEmuPlaceholder    = "{{emu}}"    // the emulator's URL
	fuzzSecretPlaceholder = "{{secret}}" // a canary secret, checked never to leak
)

// fuzzWorld is one fuzz target's Auth0 emulator behind one HTTP server, whose handler a
// target may swap for a fresh emulator per input, and the virtual clock of the input
// running now.
type fuzzWorld struct {
	srv   *httptest.Server
	host  string // 127.0.0.1:port
	emu   atomic.Pointer[emulator.Server]
	clock atomic.Pointer[fakeClock]
	// fixture is the storage the fixture left, and end the virtual time it ended at.
	fixture map[string][]byte
	end     time.Time
}

func newFuzzWorld(f *testing.F) *fuzzWorld {
	f.Helper()
	w := &fuzzWorld{}
	w.clock.Store(newFakeClock(fuzzT0))
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.emu.Load().ServeHTTP(rw, r)
	}))
	f.Cleanup(w.srv.Close)
	w.host = strings.TrimPrefix(w.srv.URL, "http://")
	w.resetEmulator()
	return w
}

// fuzzApps are the emulator's applications besides the management one.
var fuzzApps = []string{testAppID, testApp2ID, fuzzApp3ID, fuzzApp4ID, fuzzApp5ID, fuzzApp6ID, fuzzApp7ID}

// resetEmulator swaps in a fresh emulator: the management application with every scope
// and the applications app-1 to app-7, with fixed secrets.
func (w *fuzzWorld) resetEmulator() {
	emu := emulator.New(emulator.Options{Now: func() time.Time { return w.clock.Load().Now() }, Seed: 1})
	emu.AddClient(emulator.Client{ClientID: testMgmtID, ClientSecret: "mgmt-secret-8f3a61c0e2d94b7f", Name: "Vault", Grants: map[string][]string{emulator.ManagementGrant: keyScopes}})
	for i, id := range fuzzApps {
		emu.AddClient(emulator.Client{ClientID: id, ClientSecret: fmt.Sprintf("app-secret-%d-5c1e0b9a77d2", i+1), Grants: map[string][]string{testAPI: {"read:a", "write:a"}}})
	}
	w.emu.Store(emu)
}

// fuzzKeys hands out pre-generated RSA keys: generating one per rotation would make
// every rotation of a private_key_jwt role take a tenth of a second. Auth0 refuses a key
// twice per application; a fixture and one input use fewer than len(keys).
var fuzzKeys struct {
	once sync.Once
	keys [][2]string
	next atomic.Uint64
}

func fuzzGenerateKey(int) (string, string, error) {
	fuzzKeys.once.Do(func() {
		for range 4 {
			private, public, err := auth0api.GenerateRSAKey(model.DefaultKeyBits)
			if err != nil {
				panic(err)
			}
			fuzzKeys.keys = append(fuzzKeys.keys, [2]string{private, public})
		}
	})
	k := fuzzKeys.keys[fuzzKeys.next.Add(1)%uint64(len(fuzzKeys.keys))]
	return k[0], k[1], nil
}

// fuzzEnv is one input's backend: fresh, on a copy of the fixture's storage, logging at
// trace level, on a virtual clock starting where the fixture ended.
type fuzzEnv struct {
	t       testing.TB
	w       *fuzzWorld
	b       *backend
	storage *logical.InmemStorage
	logs    *syncBuffer
	// canary is a secret the input's data may carry ({{secret}}); it must never leak.
	canary string
	// echoable is what of the input the engine may show (secrets() exempts what it holds).
	echoable string
}

func (w *fuzzWorld) env(t testing.TB, stored map[string][]byte, start time.Time) *fuzzEnv {
	t.Helper()
	clk := newFakeClock(start)
	clk.autoAdvance = true
	w.clock.Store(clk)
	s := &logical.InmemStorage{}
	for k, v := range stored {
		if err := s.Put(t.Context(), &logical.StorageEntry{Key: k, Value: bytes.Clone(v)}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	b := newBackendWithClock(clk)
	b.ManualDispatch = true
	b.Jitter = func(n int64) int64 { return n - 1 }
	b.GenerateKey = fuzzGenerateKey
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	if err := b.Setup(t.Context(), conf); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(t.Context(), &logical.InitializationRequest{Storage: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	// The start's reconciliation and queue load run in the background: let them finish,
	// so that what an input changes in storage is the input's doing.
	<-b.Sched.Load().Loaded
	return &fuzzEnv{t: t, w: w, b: b, storage: s, logs: logs}
}

// request runs one request as Vault routes it: an update of a path that does not exist
// yet goes through the existence check and becomes a create. It returns the HTTP status
// Vault would answer (0: 200/204) and the error it would show.
func (e *fuzzEnv) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, int, error) {
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: e.storage}
	if op == logical.UpdateOperation {
		// As Vault's request handling does: a path no pattern matches fails later, a
		// user error is a 400, any other error a 500.
		check, exists, err := e.b.HandleExistenceCheck(e.t.Context(), req)
		var userErr errutil.UserError
		switch {
		case errors.Is(err, logical.ErrUnsupportedPath):
		case errors.As(err, &userErr):
			return nil, http.StatusBadRequest, err
		case err != nil:
			return nil, http.StatusInternalServerError, fmt.Errorf("existence check: %w", err)
		}
		if check && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	resp, err := e.b.HandleRequest(e.t.Context(), req)
	status, shown := logical.RespondErrorCommon(req, resp, err)
	if shown != nil {
		logical.AdjustErrorStatusCode(&status, err)
	}
	return resp, status, shown
}

// must runs a fixture's request, which must succeed, and returns its data.
func (e *fuzzEnv) must(op logical.Operation, path string, data map[string]interface{}) map[string]interface{} {
	e.t.Helper()
	resp, status, err := e.request(op, path, data)
	if err != nil || status >= 300 {
		e.t.Fatalf("fixture: %s %s: %d %v", op, path, status, err)
	}
	if resp == nil {
		return nil
	}
	return resp.Data
}

// snapshot is every storage entry, by key.
func (e *fuzzEnv) snapshot() map[string][]byte {
	e.t.Helper()
	keys, err := logical.CollectKeys(e.t.Context(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		entry, err := e.storage.Get(e.t.Context(), k)
		if err != nil {
			e.t.Fatal(err)
		}
		if entry != nil {
			out[k] = bytes.Clone(entry.Value)
		}
	}
	return out
}

// storageDiff describes how after differs from before, "" when it does not.
func storageDiff(before, after map[string][]byte) string {
	var diffs []string
	for k, v := range after {
		if old, ok := before[k]; !ok {
			diffs = append(diffs, "added "+k)
		} else if !bytes.Equal(old, v) {
			diffs = append(diffs, fmt.Sprintf("changed %s:\n    before %s\n    after  %s", k, old, v))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diffs = append(diffs, "deleted "+k)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n  ")
}

// secrets is every secret the engine must keep to itself: the stored ones (any string
// under a key that names a secret or a private key, in any entry), Auth0's current ones,
// and the input's canary; but for those the input also carries where they may be echoed.
func (e *fuzzEnv) secrets(stored ...map[string][]byte) []string {
	set := map[string]bool{}
	add := func(s string) {
		// Shorter values written by the fuzzer are no secrets worth the name, and one the
		// input carries elsewhere than in client_secret the engine may echo from there.
		if len(s) >= 12 && !strings.Contains(e.echoable, s) {
			set[s] = true
		}
	}
	var walk func(key string, v interface{})
	walk = func(key string, v interface{}) {
		switch v := v.(type) {
		case map[string]interface{}:
			for k, x := range v {
				walk(k, x)
			}
		case []interface{}:
			for _, x := range v {
				walk(key, x)
			}
		case string:
			if strings.Contains(key, "secret") || strings.Contains(key, "private_key") {
				add(v)
			}
		}
	}
	for _, snap := range stored {
		for k, raw := range snap {
			if strings.HasPrefix(k, model.OwnerStoragePrefix) {
				continue
			}
			var v interface{}
			if json.Unmarshal(raw, &v) == nil {
				walk("", v)
			}
		}
	}
	emu := e.w.emu.Load()
	for _, id := range append([]string{testMgmtID}, fuzzApps...) {
		if s, ok := emu.ClientSecret(id); ok {
			add(s)
		}
	}
	if e.canary != "" {
		set[e.canary] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// servedSecretFields are the fields of a creds read that carry a secret by design.
var servedSecretFields = map[string]bool{
	"client_secret": true, "previous_client_secret": true, "next_client_secret": true,
	"private_key": true, "previous_private_key": true,
}

// checkNoLeak fails if a secret appears in the response (outside the fields allowed to
// carry one), its warnings, the error, or what the backend logged during the input.
func (e *fuzzEnv) checkNoLeak(what string, resp *logical.Response, err error, secrets []string, allowed map[string]bool) {
	e.t.Helper()
	var texts []string
	if err != nil {
		texts = append(texts, "error: "+err.Error())
	}
	if resp != nil {
		texts = append(texts, resp.Warnings...)
		for k, v := range resp.Data {
			if !allowed[k] {
				texts = append(texts, fmt.Sprintf("field %s: %v", k, v))
			}
		}
	}
	texts = append(texts, "log: "+e.logs.String())
	for _, s := range secrets {
		for _, text := range texts {
			if strings.Contains(text, s) {
				e.t.Fatalf("%s: a secret (%.6s…) appears in %.300s", what, s, text)
			}
		}
	}
}

// checkAuth0Unchanged fails if Auth0 changed since it counted before: config and role
// writes and every read change nothing there.
func (e *fuzzEnv) checkAuth0Unchanged(what, before string) {
	e.t.Helper()
	if now := auth0Changes(e.w.emu.Load()); now != before {
		e.t.Fatalf("%s changed Auth0: %s, was %s", what, now, before)
	}
}

// checkStatus fails on a 5xx, with the log's end: a panic the engine recovered into a 500
// is logged there with its stack.
func (e *fuzzEnv) checkStatus(what string, status int, err error) {
	e.t.Helper()
	if status >= 500 {
		logs := e.logs.String()
		e.t.Fatalf("%s: answered %d for the input: %v\nlog:\n%s", what, status, err, logs[max(0, len(logs)-4000):])
	}
}

// fuzzData decodes an input's request data as Vault hands it to a plugin: a body starting
// with "{" is JSON (numbers as json.Number; what follows the object is ignored, as Vault
// ignores it); anything else is a query string (reads, lists: a repeated key gives a
// list) or form body (writes: repeated values joined with commas). ok is false for what
// Vault refuses before the plugin sees it (malformed JSON or query).
func fuzzData(op logical.Operation, body string) (data map[string]interface{}, ok bool) {
	trimmed := strings.TrimSpace(body)
	switch {
	case trimmed == "":
		return nil, true
	case strings.HasPrefix(trimmed, "{"):
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			return nil, false
		}
		return data, true
	}
	values, err := url.ParseQuery(body)
	if err != nil {
		return nil, false
	}
	delete(values, "help") // Vault answers ?help itself
	data = map[string]interface{}{}
	for k, v := range values {
		switch {
		case len(v) == 1:
			data[k] = v[0]
		case op == logical.ReadOperation || op == logical.ListOperation:
			data[k] = v
		default:
			data[k] = strings.Join(v, ",")
		}
	}
	return data, true
}

// substitute replaces the placeholders in the data's top-level string values: the
// emulator's URL, and in client_secret a canary secret unique to the input. It notes what
// of the input the engine may echo: the name, field names and values but client_secret's.
func (e *fuzzEnv) substitute(name string, data map[string]interface{}, input string) {
	defer func() {
		echo := []string{name}
		for k, v := range data {
			echo = append(echo, k)
			if k != "client_secret" {
				echo = append(echo, fmt.Sprint(v))
			}
		}
		e.echoable = strings.Join(echo, "\x00")
	}()
	sum := sha256.Sum256([]byte(input))
	canary := "canary-" + hex.EncodeToString(sum[:12])
	for k, v := range data {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if k == "client_secret" && strings.Contains(s, fuzzSecretPlaceholder) {
			e.canary = canary
			s = strings.ReplaceAll(s, fuzzSecretPlaceholder, canary)
		}
		data[k] = strings.ReplaceAll(s, fuzzEmuPlaceholder, "http://"+e.w.host)
	}
}

// buildFixture configures the engine for the emulator and creates five roles, one of
// each kind, with some history:
//
//	app     app-1  immediate, max_versions=3, rotated 4 times (versions 2-4), token_audiences
//	fresh   app-2  rotation_period=1h, never rotated, token_audiences
//	staged  app-3  staged, switched once (version 1), version 2 staged
//	keys    app-4  private_key_jwt with assertions and token_audiences, rotated once
//	sched   app-5  rotation_schedule with a window, imported (version 1)
//	cut     app-7  rotated once, but the role entry is from before (a commit cut short)
func (w *fuzzWorld) buildFixture(t testing.TB) *fuzzEnv {
	t.Helper()
	e := w.env(t, nil, fuzzT0)
	mgmt, _ := w.emu.Load().ClientSecret(testMgmtID)
	e.must(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": w.srv.URL, "client_id": testMgmtID, "client_secret": mgmt,
		"rate_limit": testRateLimit, "propagation_wait": 0,
	})
	e.must(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "max_versions": 3, "token_audiences": testAPI, "token_scopes": "read:a"})
	for range 4 {
		e.must(logical.UpdateOperation, "rotate/app", nil)
	}
	e.must(logical.UpdateOperation, "roles/fresh", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "1h", "token_audiences": testAPI})
	e.must(logical.UpdateOperation, "roles/staged", map[string]interface{}{"client_id": fuzzApp3ID, "rotation_strategy": "staged", "stage_period": "1h", "rotation_period": "24h"})
	e.must(logical.UpdateOperation, "rotate/staged", map[string]interface{}{"switch_now": true})
	e.must(logical.UpdateOperation, "rotate/staged", nil)
	e.must(logical.UpdateOperation, "roles/keys", map[string]interface{}{
		"client_id": fuzzApp4ID, "credential_type": "private_key_jwt", "allow_auth_method_change": true,
		"allow_assertions": true, "overlap_period": "1h", "token_audiences": testAPI,
	})
	e.must(logical.UpdateOperation, "rotate/keys", nil)
	e.must(logical.UpdateOperation, "roles/sched", map[string]interface{}{"client_id": fuzzApp5ID, "rotation_schedule": "0 3 * * SUN", "rotation_window": "1h", "import_current_secret": true})
	// A rotation whose commit a crash cut short: the new secret and creds are stored, the
	// role entry is the one from before, and the write-ahead entry is gone (as after a
	// reconciliation that found nothing to do at Auth0, or a copy restored from backups).
	e.must(logical.UpdateOperation, "roles/cut", map[string]interface{}{"client_id": fuzzApp7ID})
	uncommitted, err := e.storage.Get(t.Context(), model.RoleKey("cut"))
	if err != nil {
		t.Fatal(err)
	}
	e.must(logical.UpdateOperation, "rotate/cut", nil)
	if err := e.storage.Put(t.Context(), uncommitted); err != nil {
		t.Fatal(err)
	}
	return e
}

// prepare builds the fixture once per target (per fuzzing worker) and keeps its storage
// and end time for every input.
func (w *fuzzWorld) prepare(f *testing.F) {
	f.Helper()
	e := w.buildFixture(f)
	w.fixture = e.snapshot()
	w.end = w.clock.Load().Now()
}

// start prepares one input: a fresh backend over stored, and the request data decoded,
// with its placeholders substituted. ok is false for data Vault refuses itself.
func (w *fuzzWorld) start(t *testing.T, stored map[string][]byte, name string, op logical.Operation, body string) (e *fuzzEnv, data map[string]interface{}, ok bool) {
	t.Helper()
	if data, ok = fuzzData(op, body); !ok {
		return nil, nil, false
	}
	e = w.env(t, stored, w.end)
	e.substitute(name, data, body)
	if os.Getenv("FUZZ_SLOW") != "" {
		start := time.Now()
		t.Cleanup(func() {
			if d := time.Since(start); d > 2*time.Second {
				fmt.Fprintf(os.Stderr, "SLOW %s %q\n", d, body)
			}
		})
	}
	return e, data, true
}

// refused reports whether Vault answers the request with an error.
func refused(status int, err error) bool { return err != nil || status >= 400 }

// read runs a read (or list) that follows an input and checks it like one: no 5xx, no
// secret outside allowed, nothing stored; and a creds read that succeeds serves a client
// secret or a private key.
func (e *fuzzEnv) read(op logical.Operation, path string, data map[string]interface{}, allowed map[string]bool) (*logical.Response, int, error) {
	e.t.Helper()
	before, auth0Before := e.snapshot(), auth0Changes(e.w.emu.Load())
	resp, status, err := e.request(op, path, data)
	what := fmt.Sprintf("%s %s %v", op, path, data)
	e.checkStatus(what, status, err)
	e.checkNoLeak(what, resp, err, e.secrets(before), allowed)
	if diff := storageDiff(before, e.snapshot()); diff != "" {
		e.t.Fatalf("%s stored something:\n  %s", what, diff)
	}
	e.checkAuth0Unchanged(what, auth0Before)
	if strings.HasPrefix(path, "creds/") && !refused(status, err) {
		secret, _ := resp.Data["client_secret"].(string)
		key, _ := resp.Data["private_key"].(string)
		if secret == "" && key == "" {
			e.t.Fatalf("%s serves no credential: %v", what, resp.Data)
		}
	}
	return resp, status, err
}

// checkReadsAfter reads everything about role name after an input changed storage: all
// must still answer without a 5xx and without a leak.
func (e *fuzzEnv) checkReadsAfter(name string) {
	e.t.Helper()
	e.read(logical.ReadOperation, "config", nil, nil)
	e.read(logical.ListOperation, "roles/", nil, nil)
	e.read(logical.ReadOperation, "status", nil, nil)
	if name == "" {
		return
	}
	e.read(logical.ReadOperation, "roles/"+name, nil, nil)
	e.read(logical.ReadOperation, "versions/"+name, nil, nil)
	e.read(logical.ReadOperation, "creds/"+name, nil, servedSecretFields)
	e.read(logical.ReadOperation, "assertion/"+name, nil, map[string]bool{"client_assertion": true})
}

// fuzzRoles are the fixture's roles (but cut, whose reads with a version found a bug:
// testdata/fuzz/FuzzCredsRead holds them) and one it does not have.
var fuzzRoles = []string{"app", "fresh", "staged", "keys", "sched", "new"}

// fuzzNameSeeds are role names worth trying with any data: the fixture's roles, a new
// one, and a few the path pattern refuses or that differ only in case.
var fuzzNameSeeds = []string{"app", "fresh", "staged", "keys", "sched", "cut", "new", "APP", "a.b-c_d", "", "x/y", "..", "-a"}

func FuzzConfigWrite(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"domain":"{{emu}}","client_id":"vault-mgmt","client_secret":"mgmt-secret-8f3a61c0e2d94b7f"}`,
		`{"domain":"{{emu}}","client_id":"vault-mgmt","client_secret":"{{secret}}"}`,
		`{"domain":"{{emu}}","client_id":"vault-mgmt","client_secret":"{{secret}}","verify_connection":false,"rate_limit":5,"request_timeout":"10s","token_refresh_fraction":0.5,"creds_cache_size":0,"propagation_wait":"1m","root_rotation_period":"720h"}`,
		`{"client_secret":"{{secret}}"}`,
		`{"client_secret":"   "}`,
		`{"rate_limit":0}`,
		`{"rate_limit":"1e309"}`,
		`{"rate_limit":-1}`,
		`{"rate_limit":"fast"}`,
		`{"token_refresh_fraction":1.5}`,
		`{"token_refresh_fraction":[0.5]}`,
		`{"request_timeout":0}`,
		`{"request_timeout":9223372036854775807}`,
		`{"request_timeout":"-5s"}`,
		`{"propagation_wait":301}`,
		`{"creds_cache_size":-1}`,
		`{"creds_cache_size":"1e9"}`,
		`{"root_rotation_period":1}`,
		`{"root_rotation_period":"1000000000h"}`,
		`{"audience":"https://elsewhere.example/api/v2/"}`,
		`{"audience":"not a url"}`,
		`{"domain":"ftp://acme.auth0.com","client_id":"x","client_secret":"{{secret}}"}`,
		`{"domain":"http://acme.auth0.com","client_id":"x","client_secret":"{{secret}}"}`,
		`{"domain":"https://user:{{secret}}@acme.auth0.com","client_id":"x","client_secret":"y"}`,
		`{"domain":"acme.auth0.com/path?q#f","client_id":"x","client_secret":"{{secret}}"}`,
		`{"domain":"169.254.169.254","client_id":"x","client_secret":"{{secret}}"}`,
		`{"domain":"acme.auth0.com","client_id":"x"}`,
		`{"client_id":"app-1","client_secret":"{{secret}}"}`,
		`{"domain":{"nested":true},"client_id":["a","b"],"client_secret":12345678901234567890}`,
		`{"verify_connection":"maybe"}`,
		`{"domain":"{{emu}}","client_id":"vault-mgmt","client_secret":"wrong-secret-{{secret}}"}`,
		`domain={{emu}}&client_id=vault-mgmt&client_secret={{secret}}&rate_limit=3&rate_limit=4`,
		`{"allowed_client_ids":"app-1,app-2,team-a-*"}`,
		`{"allowed_client_ids":["app-*",""]}`,
		`{"allowed_client_ids":"**,a b"}`,
		`{"allowed_client_ids":"app-6"}`,
		`{"allowed_client_ids":""}`,
		`{"domain":"127.0.0.1:1","client_id":"vault-mgmt","client_secret":"{{secret}}","allow_domain_change":true}`,
		`{"domain":"acme.auth0.com","client_id":"vault-mgmt","client_secret":"{{secret}}","allow_domain_change":"true","verify_connection":false}`,
		`{"domain":"[fe80::1]","client_id":"vault-mgmt","client_secret":"{{secret}}","verify_connection":false}`,
	}
	for _, s := range seeds {
		f.Add(true, s)
		f.Add(false, s)
	}
	w := newFuzzWorld(f)
	w.prepare(f)
	f.Fuzz(func(t *testing.T, existing bool, body string) {
		stored := w.fixture
		if !existing {
			stored = nil
		}
		e, data, ok := w.start(t, stored, "", logical.UpdateOperation, body)
		if !ok {
			return
		}
		// The engine contacts no one but the emulator: a write that would verify the
		// credentials against another host verifies nothing.
		if raw, given := data["domain"]; given {
			d, isString := raw.(string)
			if _, host, err := model.ParseDomain(d); !isString || err != nil || host != w.host {
				data["verify_connection"] = false
			}
		}
		before, auth0Before := e.snapshot(), auth0Changes(w.emu.Load())
		resp, status, err := e.request(logical.UpdateOperation, "config", data)
		after := e.snapshot()
		what := fmt.Sprintf("config write %v", data)
		e.checkStatus(what, status, err)
		e.checkNoLeak(what, resp, err, e.secrets(before, after), nil)
		e.checkAuth0Unchanged(what, auth0Before)
		if refused(status, err) {
			if diff := storageDiff(before, after); diff != "" {
				t.Fatalf("%s was refused (%v) but storage changed:\n  %s", what, err, diff)
			}
			return
		}
		cfg, err := model.LoadConfig(t.Context(), e.storage)
		if err != nil || cfg == nil {
			t.Fatalf("%s succeeded, but the stored config cannot be read: %v", what, err)
		}
		checkConfigInvariants(t, what, cfg)
		read, _, _ := e.read(logical.ReadOperation, "config", nil, nil)
		if _, shown := read.Data["client_secret"]; shown {
			t.Fatalf("config read shows client_secret")
		}
		if existing {
			e.checkReadsAfter("app")
		}
	})
}

// checkConfigInvariants fails when a stored config holds a value its write should have
// refused.
func checkConfigInvariants(t *testing.T, what string, cfg *model.ConfigEntry) {
	t.Helper()
	inRange := func(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v <= hi }
	switch {
	case cfg.Host == "" || cfg.ClientID == "" || strings.TrimSpace(cfg.ClientSecret) == "":
		t.Fatalf("%s stored a config without domain, client_id or client_secret", what)
	case !inRange(cfg.RateLimitOrDefault(), 0.01, 1000):
		t.Fatalf("%s stored rate_limit %g", what, cfg.RateLimitOrDefault())
	case !inRange(cfg.TokenRefreshFractionOrDefault(), 0.1, 1):
		t.Fatalf("%s stored token_refresh_fraction %g", what, cfg.TokenRefreshFractionOrDefault())
	case cfg.RequestTimeoutOrDefault() < time.Second || cfg.RequestTimeoutOrDefault() > 5*time.Minute:
		t.Fatalf("%s stored request_timeout %s", what, cfg.RequestTimeoutOrDefault())
	case cfg.PropagationWaitOrDefault() < 0 || cfg.PropagationWaitOrDefault() > 5*time.Minute:
		t.Fatalf("%s stored propagation_wait %s", what, cfg.PropagationWaitOrDefault())
	case cfg.CredsCacheSizeOrDefault() < 0 || cfg.CredsCacheSizeOrDefault() > engine.MaxCredsCacheSize:
		t.Fatalf("%s stored creds_cache_size %d", what, cfg.CredsCacheSizeOrDefault())
	case cfg.RootRotationPeriod != 0 && cfg.RootRotationPeriod < model.MinRotationPeriod:
		t.Fatalf("%s stored root_rotation_period %s", what, cfg.RootRotationPeriod)
	}
}

func FuzzRoleWrite(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"client_id":"app-6"}`,
		`{"client_id":"app-6","import_current_secret":true}`,
		`{"client_id":"app-1"}`,
		`{"client_id":"vault-mgmt"}`,
		`{"client_id":"no-such-app"}`,
		`{"client_id":"../../clients/app-1"}`,
		`{"client_id":"   "}`,
		`{"client_id":7}`,
		`{"rotation_period":"720h"}`,
		`{"rotation_period":4}`,
		`{"rotation_period":-1}`,
		`{"rotation_period":"1e30h"}`,
		`{"rotation_period":9223372036854775807}`,
		`{"rotation_schedule":"0 3 * * SUN"}`,
		`{"rotation_schedule":"0 3 * * SUN","rotation_period":"1h"}`,
		`{"rotation_schedule":"0 0 30 2 *"}`,
		`{"rotation_schedule":"@daily"}`,
		`{"rotation_schedule":"TZ=Europe/Paris 0 3 * * *"}`,
		`{"rotation_schedule":"*/1 * * * *","rotation_window":"30s"}`,
		`{"rotation_schedule":"","rotation_window":"1h"}`,
		`{"rotation_window":"2h"}`,
		`{"max_versions":0}`,
		`{"max_versions":1}`,
		`{"max_versions":101}`,
		`{"max_versions":"3"}`,
		`{"max_versions":3.5}`,
		`{"max_versions":-9223372036854775808}`,
		`{"rotation_strategy":"staged","stage_period":"1h","rotation_period":"2h"}`,
		`{"rotation_strategy":"staged","stage_period":"3h","rotation_period":"2h"}`,
		`{"rotation_strategy":"immediate"}`,
		`{"rotation_strategy":"sideways"}`,
		`{"rotation_strategy":"staged","password_policy":"no-such-policy"}`,
		`{"credential_type":"private_key_jwt","allow_auth_method_change":true}`,
		`{"credential_type":"private_key_jwt","key_bits":1024}`,
		`{"credential_type":"private_key_jwt","key_bits":4096,"algorithm":"PS256","overlap_period":"30m"}`,
		`{"credential_type":"private_key_jwt","algorithm":"HS256"}`,
		`{"credential_type":"private_key_jwt","overlap_period":"-1s"}`,
		`{"credential_type":"client_secret"}`,
		`{"credential_type":"tls"}`,
		`{"key_bits":2048}`,
		`{"allow_assertions":true,"assertion_ttl":"5m"}`,
		`{"allow_assertions":true,"assertion_ttl":"6m"}`,
		`{"assertion_ttl":"1s"}`,
		`{"token_audiences":"https://api.example.test/,https://other.example/","token_scopes":"read:a write:a"}`,
		`{"token_audiences":["https://api.example.test/",{"x":1},null]}`,
		`{"token_audiences":""}`,
		`{"token_scopes":[1,2,3]}`,
		`{"import_current_secret":true}`,
		`{"import_current_secret":"yes"}`,
		`client_id=app-6&rotation_period=1h&token_audiences=a&token_audiences=b`,
	}
	for _, s := range seeds {
		for _, name := range []string{"app", "new", "keys", "staged"} {
			f.Add(name, s)
		}
	}
	for _, name := range fuzzNameSeeds {
		f.Add(name, `{"client_id":"app-6"}`)
	}
	w := newFuzzWorld(f)
	w.prepare(f)
	f.Fuzz(func(t *testing.T, name, body string) {
		e, data, ok := w.start(t, w.fixture, name, logical.UpdateOperation, body)
		if !ok {
			return
		}
		before, auth0Before := e.snapshot(), auth0Changes(w.emu.Load())
		resp, status, err := e.request(logical.UpdateOperation, "roles/"+name, data)
		after := e.snapshot()
		what := fmt.Sprintf("roles/%s write %v", name, data)
		e.checkStatus(what, status, err)
		e.checkNoLeak(what, resp, err, e.secrets(before, after), nil)
		e.checkAuth0Unchanged(what, auth0Before)
		if refused(status, err) {
			if diff := storageDiff(before, after); diff != "" {
				t.Fatalf("%s was refused (%v) but storage changed:\n  %s", what, err, diff)
			}
			return
		}
		role, err := model.LoadRole(t.Context(), e.storage, strings.ToLower(name))
		if err != nil || role == nil {
			t.Fatalf("%s succeeded, but the role cannot be read: %v", what, err)
		}
		checkRoleInvariants(t, what, role)
		e.checkReadsAfter(name)
	})
}

// checkRoleInvariants fails when a stored role holds a value its write should have
// refused.
func checkRoleInvariants(t *testing.T, what string, role *model.RoleEntry) {
	t.Helper()
	switch {
	case role.ClientID == "":
		t.Fatalf("%s stored a role without client_id", what)
	case role.MaxVersions < 1 || role.MaxVersions > model.MaxMaxVersions:
		t.Fatalf("%s stored max_versions %d", what, role.MaxVersions)
	case len(role.Versions) > role.MaxVersions:
		t.Fatalf("%s keeps %d versions with max_versions %d", what, len(role.Versions), role.MaxVersions)
	case role.RotationPeriod < 0 || role.RotationPeriod != 0 && role.RotationPeriod < model.MinRotationPeriod:
		t.Fatalf("%s stored rotation_period %s", what, role.RotationPeriod)
	case role.RotationPeriod > 0 && role.RotationSchedule != "":
		t.Fatalf("%s stored both rotation_period and rotation_schedule", what)
	case role.RotationWindow < 0 || role.RotationWindow != 0 && role.RotationWindow < model.MinRotationWindow:
		t.Fatalf("%s stored rotation_window %s", what, role.RotationWindow)
	case role.KeyBits != 0 && !sliceHas(auth0api.KeyBitSizes, role.KeyBits):
		t.Fatalf("%s stored key_bits %d", what, role.KeyBits)
	case role.AssertionTTL != 0 && (role.AssertionTTL < engine.MinAssertionTTL || role.AssertionTTL > engine.MaxAssertionTTL):
		t.Fatalf("%s stored assertion_ttl %s", what, role.AssertionTTL)
	case role.OverlapPeriod < 0 || role.StagePeriod < 0:
		t.Fatalf("%s stored a negative overlap_period or stage_period", what)
	}
}

func sliceHas[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func FuzzRotate(f *testing.F) {
	seeds := []string{
		``,
		`{}`,
		`{"switch_now":true}`,
		`{"cancel_staged":true}`,
		`{"switch_now":true,"cancel_staged":true}`,
		`{"end_overlap":true}`,
		`{"end_overlap":"1"}`,
		`{"switch_now":"yes"}`,
		`{"switch_now":2}`,
		`{"cancel_staged":[true]}`,
		`{"unknown_field":1}`,
		`switch_now=true&switch_now=false`,
	}
	addFuzzSeeds(f, seeds)
	w := newFuzzWorld(f)
	f.Fuzz(func(t *testing.T, name, body string) {
		data, ok := fuzzData(logical.UpdateOperation, body)
		if !ok {
			return
		}
		// A rotation changes Auth0: every input starts from a fresh emulator and fixture.
		w.resetEmulator()
		e := w.buildFixture(t)
		e.substitute(name, data, body)
		before, auth0Before := e.snapshot(), auth0Changes(w.emu.Load())
		resp, status, err := e.request(logical.UpdateOperation, "rotate/"+name, data)
		after := e.snapshot()
		what := fmt.Sprintf("rotate/%s %v", name, data)
		e.checkStatus(what, status, err)
		e.checkNoLeak(what, resp, err, e.secrets(before, after), nil)
		if refused(status, err) {
			if diff := storageDiff(before, after); diff != "" {
				t.Fatalf("%s was refused (%v) but storage changed:\n  %s", what, err, diff)
			}
			if changed := auth0Changes(w.emu.Load()); changed != auth0Before {
				t.Fatalf("%s was refused (%v) but Auth0 changed: %s, was %s", what, err, changed, auth0Before)
			}
			return
		}
		e.checkReadsAfter(name)
	})
}

// auth0Changes counts, per kind, what the emulator's applications have had changed:
// secrets rotated or set, credentials created or deleted, authentication methods patched.
func auth0Changes(emu *emulator.Server) string {
	st := emu.Stats()
	total := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	return fmt.Sprintf("rotations %d, secret patches %d, credentials created %d, deleted %d, auth method patches %d",
		total(st.Rotations), total(st.SecretPatches), total(st.CredentialsCreated), total(st.CredentialsDeleted), total(st.AuthMethodPatches))
}

// fuzzReadSeeds are query data worth trying on any read.
var fuzzReadSeeds = []string{
	``, `{}`, `version=1`, `version=3`, `version=0`, `version=-1`, `version=99999999999999999999`,
	`version=abc`, `version=1&version=2`, `{"version":2.5}`, `{"version":"4"}`, `{"version":[1]}`,
	`{"version":{"a":1}}`, `{"version":null}`, `audience=https://api.example.test/`,
	`audience=https://other.example/`, `audience=`, `audience=a&audience=b`, `{"audience":["https://api.example.test/"]}`,
	`{"audience":1}`, `unknown=1`,
}

// addFuzzSeeds adds each seed for every fixture role, and every name seed with no data.
func addFuzzSeeds(f *testing.F, seeds []string) {
	for _, s := range seeds {
		for _, name := range fuzzRoles {
			f.Add(name, s)
		}
	}
	for _, name := range fuzzNameSeeds {
		f.Add(name, ``)
	}
}

// fuzzRead is the body of the read targets: a read of prefix+name with the input's data
// answers no 5xx, shows secrets only in allowed, and stores nothing.
func fuzzRead(f *testing.F, prefix string, allowed map[string]bool) {
	addFuzzSeeds(f, fuzzReadSeeds)
	w := newFuzzWorld(f)
	w.prepare(f)
	f.Fuzz(func(t *testing.T, name, query string) {
		e, data, ok := w.start(t, w.fixture, name, logical.ReadOperation, query)
		if !ok {
			return
		}
		e.read(logical.ReadOperation, prefix+name, data, allowed)
	})
}

func FuzzCredsRead(f *testing.F) { fuzzRead(f, "creds/", servedSecretFields) }

func FuzzTokenRead(f *testing.F) { fuzzRead(f, "token/", map[string]bool{"access_token": true}) }

func FuzzAssertionRead(f *testing.F) {
	fuzzRead(f, "assertion/", map[string]bool{"client_assertion": true})
}

func FuzzVersionsRead(f *testing.F) { fuzzRead(f, "versions/", nil) }

// FuzzList lists the roles, and reads status, with the input's data.
func FuzzList(f *testing.F) {
	for _, s := range fuzzReadSeeds {
		f.Add(s)
	}
	f.Add(`list=true&after=a&limit=1`)
	w := newFuzzWorld(f)
	w.prepare(f)
	f.Fuzz(func(t *testing.T, query string) {
		e, data, ok := w.start(t, w.fixture, "", logical.ListOperation, query)
		if !ok {
			return
		}
		e.read(logical.ListOperation, "roles/", data, nil)
		e.read(logical.ListOperation, "roles", data, nil)
		e.read(logical.ReadOperation, "status", data, nil)
	})
}
