package auth0

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

const (
	testRateLimit = 1000.0
	testMgmtID    = "vault-mgmt"
	testAppID     = "app-1"
	testApp2ID    = "app-2"
	testAPI       = "https://api.example.test/"
	// testCNAMEKey is the custom domain key of the emulated tenant's mTLS edge.
	testCNAMEKey = "test-cname-api-key"
)

var allScopes = []string{"read:clients", "read:client_keys", "update:client_keys"}

// testEnv is a backend on in-memory storage, wired to an Auth0 emulator.
type testEnv struct {
	t       *testing.T
	b       *backend
	storage *countingStorage
	emu     *emulator.Server
	emuURL  string // http://127.0.0.1:port
	logs    *syncBuffer
	clock   *fakeClock
}

// newTestEnv starts an emulator with a management application holding scopes and two
// applications, and a backend logging at trace level into env.logs.
func newTestEnv(t *testing.T, scopes ...string) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil, scopes...)
}

// newTestEnvWith is newTestEnv with the emulator's options adjusted by adjust, which
// gets the engine's virtual clock (the emulator's by default).
func newTestEnvWith(t *testing.T, adjust func(opts *emulator.Options, clk *fakeClock), scopes ...string) *testEnv {
	t.Helper()
	if scopes == nil {
		scopes = allScopes
	}
	// The emulator keeps the engine's virtual time for its rate limits and propagation.
	clk := newFakeClock(time.Now().UTC().Truncate(time.Second))
	clk.autoAdvance = true
	opts := emulator.Options{Now: clk.Now, Seed: 1, CNAMEAPIKey: testCNAMEKey}
	if adjust != nil {
		adjust(&opts, clk)
	}
	emu := emulator.New(opts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	emu.AddClient(emulator.Client{ClientID: testMgmtID, Name: "Vault", Grants: map[string][]string{"management": scopes}})
	emu.AddClient(emulator.Client{ClientID: testAppID, Name: "App One", Grants: map[string][]string{testAPI: {}}})
	emu.AddClient(emulator.Client{ClientID: testApp2ID, Name: "App Two", Grants: map[string][]string{testAPI: {}}})

	logs := &syncBuffer{}
	storage := &countingStorage{Storage: &logical.InmemStorage{}}
	b := startBackendWithClock(t, storage, logical.TestSystemView(), hclog.Trace, logs, clk)
	// The scheduler's startup reads storage in the background: settled before the test
	// begins, so that what a test counts (storage reads of the hot path) is its own.
	if sch := b.Sched.Load(); sch != nil {
		<-sch.Loaded
	}
	return &testEnv{t: t, b: b, storage: storage, emu: emu, emuURL: srv.URL, logs: logs, clock: clk}
}

// startBackend builds and initializes a backend on s as Vault does when it mounts (or
// reloads) the plugin, logging at level into out, and cleans it up when the test ends. It
// runs on the real clock with its own dispatcher.
func startBackend(tb testing.TB, s logical.Storage, sys logical.SystemView, level hclog.Level, out io.Writer) *backend {
	tb.Helper()
	return startBackendWithClock(tb, s, sys, level, out, nil)
}

// startBackendWithClock is startBackend on a virtual clock, when clk is not nil: then no
// dispatcher runs, and the test runs due jobs itself (testEnv.runDue).
func startBackendWithClock(tb testing.TB, s logical.Storage, sys logical.SystemView, level hclog.Level, out io.Writer, clk *fakeClock) *backend {
	tb.Helper()
	return buildBackend(tb, s, sys, level, out, clk, clk != nil)
}

// buildBackend is startBackendWithClock, with the dispatcher running or not (manual).
func buildBackend(tb testing.TB, s logical.Storage, sys logical.SystemView, level hclog.Level, out io.Writer, clk *fakeClock, manual bool) *backend {
	tb.Helper()
	conf := logical.TestBackendConfig()
	conf.System = sys
	conf.StorageView = s
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: level, Output: out})
	b := newBackend()
	if clk != nil {
		b = newBackendWithClock(clk)
		b.ManualDispatch = manual
		b.Jitter = func(n int64) int64 { return n - 1 } // the longest delay: deterministic
	}
	if err := b.Setup(context.Background(), conf); err != nil {
		tb.Fatal(err)
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Cleanup(context.Background()) })
	return b
}

// runDue waits until the scheduler has loaded its queue, then runs every job due at the
// virtual clock's time, and returns how many ran.
func (e *testEnv) runDue() int {
	e.t.Helper()
	sch := e.b.Sched.Load()
	if sch == nil {
		return 0
	}
	<-sch.Loaded
	return e.b.RunDueNow(e.t.Context())
}

// advance moves the virtual clock by d and runs what fell due.
func (e *testEnv) advance(d time.Duration) int {
	e.t.Helper()
	e.clock.Advance(d)
	return e.runDue()
}

// mgmtSecret is the management application's secret at the emulator.
func (e *testEnv) mgmtSecret() string {
	s, ok := e.emu.ClientSecret(testMgmtID)
	if !ok {
		e.t.Fatal("management client missing from emulator")
	}
	return s
}

func (e *testEnv) appSecret(id string) string {
	s, ok := e.emu.ClientSecret(id)
	if !ok {
		e.t.Fatalf("client %s missing from emulator", id)
	}
	return s
}

// request runs one request through the backend as Vault would.
func (e *testEnv) request(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	e.t.Helper()
	req := &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   e.storage,
	}
	// Mimic Vault's routing of writes to new paths through the existence check.
	if op == logical.UpdateOperation {
		if check, exists, _ := e.b.HandleExistenceCheck(context.Background(), req); check && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	return e.b.HandleRequest(context.Background(), req)
}

// try runs one request and returns its data, or what went wrong.
func (e *testEnv) try(op logical.Operation, path string, data map[string]interface{}) (map[string]interface{}, error) {
	e.t.Helper()
	resp, err := e.request(op, path, data)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", op, path, err)
	case resp != nil && resp.IsError():
		return nil, fmt.Errorf("%s %s: %w", op, path, resp.Error())
	case resp == nil:
		return nil, nil
	}
	return resp.Data, nil
}

// ok runs a request that must succeed and returns its data.
func (e *testEnv) ok(op logical.Operation, path string, data map[string]interface{}) map[string]interface{} {
	e.t.Helper()
	out, err := e.try(op, path, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// userError runs a request that must fail with a 400-style error response and returns its
// message.
func (e *testEnv) userError(op logical.Operation, path string, data map[string]interface{}) string {
	e.t.Helper()
	resp, err := e.request(op, path, data)
	if err != nil {
		e.t.Fatalf("%s %s: want an error response, got internal error %v", op, path, err)
	}
	if resp == nil || !resp.IsError() {
		e.t.Fatalf("%s %s: want an error response, got %#v", op, path, resp)
	}
	return resp.Error().Error()
}

func (e *testEnv) configure() {
	e.t.Helper()
	if err := e.tryConfigure(nil); err != nil {
		e.t.Fatal(err)
	}
}

// tryConfigure writes the config for the emulator's management application, with extra
// fields, and returns what went wrong.
func (e *testEnv) tryConfigure(extra map[string]interface{}) error {
	data := map[string]interface{}{
		"domain": e.emuURL, "client_id": testMgmtID, "client_secret": e.mgmtSecret(),
		"rate_limit": testRateLimit, // the default (2/s) would slow the suite; ratelimit_test.go covers pacing
	}
	maps.Copy(data, extra)
	_, err := e.try(logical.UpdateOperation, "config", data)
	return err
}

// configureWithRole configures the engine and creates role "app" for testAppID.
func (e *testEnv) configureWithRole(extra map[string]interface{}) {
	e.t.Helper()
	e.configure()
	data := map[string]interface{}{"client_id": testAppID}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "roles/app", data)
}

// authenticates reports whether clientID/secret obtain a token at the emulator, as an
// application using the served credentials would.
func (e *testEnv) authenticates(clientID, secret string) bool {
	e.t.Helper()
	resp, err := http.PostForm(e.emuURL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {secret}, "audience": {testAPI},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// codedStatus returns the HTTP status of a logical.CodedError.
func codedStatus(err error) (int, bool) {
	var coded logical.HTTPCodedError
	if errors.As(err, &coded) {
		return coded.Code(), true
	}
	return 0, false
}

func wantContains(t *testing.T, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("%q does not contain %q", got, p)
		}
	}
}

// countingStorage counts reads so tests can hold the hot path to its storage budget, and
// can be told to fail operations.
type countingStorage struct {
	logical.Storage
	gets      atomic.Int64
	putsTotal atomic.Int64
	// failPuts fails this many next Puts of keys under failPrefix (default roles/).
	failPuts   atomic.Int64
	failPrefix atomic.Pointer[string]
	// failGets and failLists fail this many next Gets of keys under failGetPrefix, and
	// Lists of any prefix.
	failGets      atomic.Int64
	failGetPrefix atomic.Pointer[string]
	failLists     atomic.Int64
	// onGet, if set, is called with the key of every Get.
	onGet atomic.Pointer[func(key string)]
}

// failPutsUnder makes the next n Puts of keys under prefix fail.
func (s *countingStorage) failPutsUnder(prefix string, n int64) {
	s.failPrefix.Store(&prefix)
	s.failPuts.Store(n)
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	if f := s.onGet.Load(); f != nil {
		(*f)(key)
	}
	if p := s.failGetPrefix.Load(); p != nil && strings.HasPrefix(key, *p) && s.failGets.Add(-1) >= 0 {
		return nil, errStorageDown
	}
	return s.Storage.Get(ctx, key)
}

func (s *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if s.failLists.Add(-1) >= 0 {
		return nil, errStorageDown
	}
	return s.Storage.List(ctx, prefix)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.putsTotal.Add(1)
	prefix := model.RoleStoragePrefix
	if p := s.failPrefix.Load(); p != nil {
		prefix = *p
	}
	if strings.HasPrefix(e.Key, prefix) && s.failPuts.Load() > 0 {
		s.failPuts.Add(-1)
		return errStorageDown
	}
	return s.Storage.Put(ctx, e)
}

type storageError string

func (e storageError) Error() string { return string(e) }

const errStorageDown = storageError("storage unavailable")

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
