package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

const (
	// benchTokenReaders and benchTokenReads: N application reads by concurrent readers.
	benchTokenReaders = 50
	benchTokenReads   = 10_000
)

// benchCount runs fn benchTokenReads times from benchTokenReaders goroutines and returns
// how many calls failed.
func benchCount(fn func() error) (failed int64, elapsed time.Duration) {
	var next, fails atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < benchTokenReaders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= benchTokenReads {
				if fn() != nil {
					fails.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return fails.Load(), time.Since(start)
}

// BenchmarkVaultTokenLoad measures what token/<role> saves Auth0: 10,000 reads of an
// access token by 50 concurrent readers, (a) each asking Auth0's /oauth/token itself with
// the client secret, as applications without Vault's token cache do, and (b) each reading
// token/<role> from a real Vault; the emulator counts the /oauth/token requests of the
// application's client_id in both. Then the latency of token/<role> (a cache hit) against
// creds/<role> under the same closed-loop load, interleaved. Run once (-benchtime 1x).
func BenchmarkVaultTokenLoad(b *testing.B) {
	f := newFixture(b)
	emu, v := f.emu, f.v
	app := emu.AddClient(emulator.Client{ClientID: "bench-token-app", Name: "Bench Token App", Grants: map[string][]string{apiAudience: {}}})
	v.MustCLI(b, v.RootToken, "write", mount+"/config",
		"domain="+f.emuURL, "client_id="+f.mgmt.ClientID, "client_secret="+f.mgmt.ClientSecret, "rate_limit=1000")
	v.MustCLI(b, v.RootToken, "write", mount+"/roles/"+benchRoleName, "client_id="+app.ClientID, "token_audiences="+apiAudience)
	v.MustCLI(b, v.RootToken, "write", "-f", mount+"/rotate/"+benchRoleName)
	secret, ok := emu.ClientSecret(app.ClientID)
	if !ok {
		b.Fatal("no secret for the application")
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: benchTokenReaders * 2, MaxIdleConnsPerHost: benchTokenReaders * 2,
	}}
	defer client.CloseIdleConnections()
	get := func(u string, header http.Header, body url.Values) error {
		method := http.MethodGet
		var r io.Reader
		if body != nil {
			method, r = http.MethodPost, strings.NewReader(body.Encode())
		}
		req, err := http.NewRequest(method, u, r)
		if err != nil {
			return err
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	b.ResetTimer()
	before := emu.Stats().TokenRequests[app.ClientID]
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ClientID}, "client_secret": {secret}, "audience": {apiAudience}}
	directFailed, directTime := benchCount(func() error {
		return get(f.emuURL+"/oauth/token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form)
	})
	direct := emu.Stats().TokenRequests[app.ClientID] - before

	before = emu.Stats().TokenRequests[app.ClientID]
	vaultHeader := http.Header{"X-Vault-Token": {v.RootToken}}
	viaFailed, viaTime := benchCount(func() error {
		return get(v.Addr+"/v1/"+mount+"/token/"+benchRoleName, vaultHeader, nil)
	})
	via := emu.Stats().TokenRequests[app.ClientID] - before

	results := map[string]*benchLoadResult{"token": {}, "creds": {}}
	paths := map[string]string{"token": mount + "/token/" + benchRoleName, "creds": mount + "/creds/" + benchRoleName}
	for _, name := range []string{"token", "creds"} {
		benchRunLoad(client, v.Addr, v.RootToken, paths[name], benchLoadWarmup)
	}
	for _, name := range []string{"token", "creds", "creds", "token"} {
		results[name].add(benchRunLoad(client, v.Addr, v.RootToken, paths[name], benchLoadRound))
	}
	b.StopTimer()

	if directFailed > 0 || viaFailed > 0 || results["token"].errors > 0 || results["creds"].errors > 0 {
		b.Errorf("failures: direct %d, via Vault %d, token load %d, creds load %d", directFailed, viaFailed, results["token"].errors, results["creds"].errors)
	}
	tk, cr := results["token"], results["creds"]
	b.ReportMetric(benchTokenReads, "reads")
	b.ReportMetric(benchTokenReaders, "readers")
	b.ReportMetric(float64(direct), "auth0-token-requests-direct")
	b.ReportMetric(float64(via), "auth0-token-requests-via-vault")
	b.ReportMetric(tk.perSecond(), "token-req/s")
	b.ReportMetric(cr.perSecond(), "creds-req/s")
	b.ReportMetric(float64(tk.percentile(50))/float64(time.Microsecond), "token-p50-us")
	b.ReportMetric(float64(cr.percentile(50))/float64(time.Microsecond), "creds-p50-us")
	b.ReportMetric(float64(tk.percentile(99))/float64(time.Microsecond), "token-p99-us")
	b.ReportMetric(float64(cr.percentile(99))/float64(time.Microsecond), "creds-p99-us")
	b.ReportMetric(directTime.Seconds(), "s-direct")
	b.ReportMetric(viaTime.Seconds(), "s-via-vault")
	b.Logf("%d token reads by %d readers: asking Auth0 directly cost %d /oauth/token requests (%v); reading token/%s from Vault cost %d (%v)",
		benchTokenReads, benchTokenReaders, direct, directTime.Round(time.Millisecond), benchRoleName, via, viaTime.Round(time.Millisecond))
	b.Logf("%d clients, 2 rounds of %v each (token creds creds token): token/ %.0f req/s p50 %v p99 %v; creds/ %.0f req/s p50 %v p99 %v; token/creds throughput x%.3f, p50 x%.3f",
		benchLoadWorkers, benchLoadRound, tk.perSecond(), tk.percentile(50).Round(time.Microsecond), tk.percentile(99).Round(time.Microsecond),
		cr.perSecond(), cr.percentile(50).Round(time.Microsecond), cr.percentile(99).Round(time.Microsecond),
		tk.perSecond()/cr.perSecond(), float64(tk.percentile(50))/float64(cr.percentile(50)))
}
