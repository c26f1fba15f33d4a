package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"gopkg.in/yaml.v3"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// Prometheus scrapes auth0/metrics over Vault's HTTP API with a token whose policy reads
// only that path (the recipe in docs/recipes/prometheus.md), and what it gets parses as
// Prometheus' text format and counts what the engine did.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	t.Parallel()
	f, app := newRotatedApp(t)
	v := f.v
	for i := 0; i < 4; i++ {
		v.MustCLI(t, v.RootToken, "read", mount+"/creds/myapp")
	}
	blocks := vaulttest.RecipeBlocks(t, prometheusRecipe)
	v.WritePolicy(t, "auth0-metrics", blocks["prometheus-policy"])
	token := v.CreateToken(t, "auth0-metrics")
	job := recipeScrapeJob(t, blocks["prometheus-scrape"])

	families, raw := scrapeMetrics(t, v.Addr, job, token)
	counter := func(name string, labels map[string]string) float64 {
		t.Helper()
		mf := families[name]
		if mf == nil {
			t.Fatalf("no %s in the scrape:\n%s", name, raw)
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.GetGauge().GetValue()
		}
		t.Fatalf("no %s%v in the scrape:\n%s", name, labels, raw)
		return 0
	}
	if got := counter("vault_auth0_rotations_total", map[string]string{"kind": "client_secret", "trigger": "rotate", "outcome": "rotated"}); got != 1 {
		t.Errorf("rotations_total{rotated} = %v, want 1", got)
	}
	if got := counter("vault_auth0_creds_reads_total", nil); got != 4 {
		t.Errorf("creds_reads_total = %v, want 4", got)
	}
	if got := counter("vault_auth0_roles", nil); got != 1 {
		t.Errorf("roles = %v, want 1", got)
	}
	if got := counter("vault_auth0_api_requests_total", map[string]string{"endpoint": "POST /api/v2/clients/{id}/rotate-secret", "status": "2xx"}); got != 1 {
		t.Errorf("rotate-secret requests = %v, want 1", got)
	}
	if counter("vault_auth0_last_success_timestamp_seconds", nil) == 0 {
		t.Error("no last successful Auth0 call after a rotation")
	}
	if strings.Contains(raw, f.secret(t, app.ClientID)) || strings.Contains(raw, f.mgmt.ClientSecret) {
		t.Fatal("a secret appears in the scrape")
	}
	// The scraping token reads nothing else.
	if _, err := v.CLI(t, token, "read", mount+"/creds/myapp"); err == nil {
		t.Fatal("the scraping token read creds")
	}
}

const prometheusRecipe = "docs/recipes/prometheus.md"

// scrapeJob is what the recipe's scrape config says of how to scrape.
type scrapeJob struct {
	MetricsPath   string `yaml:"metrics_path"`
	Authorization struct {
		Type            string `yaml:"type"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
}

// recipeScrapeJob decodes the recipe's scrape config, strictly, and checks the parts the
// test cannot follow literally (the scheme and the target are the deployment's).
func recipeScrapeJob(t *testing.T, block string) scrapeJob {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Scheme        string `yaml:"scheme"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			scrapeJob `yaml:",inline"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(block))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil || len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%s: the scrape config does not decode as one job: %v", prometheusRecipe, err)
	}
	job := cfg.ScrapeConfigs[0]
	if job.MetricsPath != "/v1/"+mount+"/metrics" || job.Authorization.Type != "Bearer" || job.Authorization.CredentialsFile == "" {
		t.Fatalf("%s: the job scrapes %q with authorization %+v; want /v1/%s/metrics with a Bearer token from a file", prometheusRecipe, job.MetricsPath, job.Authorization, mount)
	}
	return job.scrapeJob
}

// scrapeMetrics GETs the job's metrics path as Prometheus does (its authorization, the
// text format accepted) and parses the answer.
func scrapeMetrics(t *testing.T, addr string, job scrapeJob, token string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, addr+job.MetricsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", job.Authorization.Type+" "+token)
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("scrape answered %d, Content-Type %q:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the scrape does not parse as Prometheus text: %v\n%s", err, body)
	}
	return families, string(body)
}
