// Package metrics is a mount's Prometheus metrics, answered at auth0/metrics: one registry
// per mount, counters and histograms the engine adds to as it works, and gauges of the
// roles' health read when Prometheus scrapes. Every metric on the read path (creds,
// token/) is an atomic add; per-role series exist only when the operator allows role names
// as labels (metrics_role_labels).
package metrics

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// ContentType is the media type of Write's answer: Prometheus' text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Health is the state of a mount's roles, as its scheduler knows it.
type Health struct {
	// Roles are the roles known; Queued those with a due time; Overdue those whose due
	// time passed more than a minute ago; Failing those whose last attempt failed;
	// Halted those not rotated until their operator acts; Drifted those whose credential
	// the last drift check found Auth0 no longer holds.
	Roles, Queued, Overdue, Failing, Halted, Drifted int
}

// Metrics are one mount's metrics. The zero value is not usable: use New.
type Metrics struct {
	reg        *prometheus.Registry
	roleLabels atomic.Bool

	rotations      *prometheus.CounterVec
	rotationTime   *prometheus.HistogramVec
	roleRotations  *prometheus.CounterVec
	requests       *prometheus.CounterVec
	requestTime    *prometheus.HistogramVec
	rateLimited    prometheus.Counter
	paused         prometheus.Counter
	credsReads     prometheus.Counter
	roleCredsReads *prometheus.CounterVec
	tokenReads     prometheus.Counter
	tokenHits      prometheus.Counter
	tokenMisses    prometheus.Counter
	tokenFetches   prometheus.Counter
	lastSuccess    atomic.Int64 // unix nanoseconds; 0: none yet
}

const namespace = "vault_auth0"

// New makes a mount's metrics; health is asked for the roles' state at each scrape.
func New(health func() Health) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	histogramVec := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(h)
		return h
	}
	m.rotations = counterVec("rotations_total", "Role and root jobs that acted, by credential kind, trigger and outcome (rotated, unchanged, refused, failed).", "kind", "trigger", "outcome")
	m.rotationTime = histogramVec("rotation_duration_seconds", "How long a rotation that stored a new version took, from taking the role's lock to its commit.",
		[]float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}, "kind")
	m.roleRotations = counterVec("role_rotations_total", "Jobs that acted, by role and outcome; only with metrics_role_labels=true.", "role", "outcome")
	m.requests = counterVec("api_requests_total", "Requests to Auth0 (Management API and token endpoint), by endpoint and status class (2xx, 4xx, 429, 5xx, or error: no answer).", "endpoint", "status")
	m.requestTime = histogramVec("api_request_duration_seconds", "Latency of requests to Auth0, by endpoint.",
		[]float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}, "endpoint")
	m.rateLimited = counter("api_rate_limited_total", "Answers 429 (rate limit) from Auth0.")
	m.paused = counter("api_paused_seconds_total", "Time the mount's Management API calls waited after a 429, as Auth0's Retry-After or rate-limit reset said.")
	m.credsReads = counter("creds_reads_total", "Reads of creds/<name>.")
	m.roleCredsReads = counterVec("role_creds_reads_total", "Reads of creds/<name>, by role; only with metrics_role_labels=true.", "role")
	m.tokenReads = counter("token_reads_total", "Reads of token/<name>.")
	m.tokenHits = counter("token_cache_hits_total", "token/ reads answered from the token cache.")
	m.tokenMisses = counter("token_cache_misses_total", "token/ reads the token cache could not answer.")
	m.tokenFetches = counter("token_requests_total", "Access tokens token/ asked Auth0 for.")
	gauge := func(name, help string, value func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, value))
	}
	gauge("last_success_timestamp_seconds", "When Auth0 last answered one of the mount's Management API calls without an error (unix time); 0: not since the plugin started.", func() float64 {
		return float64(m.lastSuccess.Load()) / 1e9
	})
	m.reg.MustRegister(&healthCollector{health: health})
	return m
}

// SetRoleLabels turns per-role series on or off (config's metrics_role_labels). Turning
// them off drops those series.
func (m *Metrics) SetRoleLabels(on bool) {
	if m.roleLabels.Swap(on) && !on {
		m.roleRotations.Reset()
		m.roleCredsReads.Reset()
	}
}

// Job counts a role or root job that acted: kind and trigger as the engine names them,
// outcome rotated, unchanged, refused or failed; d is its duration, observed for rotations.
func (m *Metrics) Job(kind, trigger, role, outcome string, d time.Duration) {
	m.rotations.WithLabelValues(kind, trigger, outcome).Inc()
	if outcome == "rotated" {
		m.rotationTime.WithLabelValues(kind).Observe(d.Seconds())
	}
	if role != "" && m.roleLabels.Load() {
		m.roleRotations.WithLabelValues(role, outcome).Inc()
	}
}

// ObserveRequest records a request to Auth0: its endpoint (method and path template), the
// HTTP status of its answer (0: none came) and its latency.
func (m *Metrics) ObserveRequest(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, statusClass(status)).Inc()
	m.requestTime.WithLabelValues(endpoint).Observe(d.Seconds())
	if status == 429 {
		m.rateLimited.Inc()
	}
}

// ObservePause records a wait of the mount's Management API calls after a 429.
func (m *Metrics) ObservePause(d time.Duration) {
	if d > 0 {
		m.paused.Add(d.Seconds())
	}
}

// ObserveSuccess records that Auth0 answered a Management API call without an error.
func (m *Metrics) ObserveSuccess(at time.Time) { m.lastSuccess.Store(at.UnixNano()) }

// CredsRead counts a read of creds/<role>.
func (m *Metrics) CredsRead(role string) {
	m.credsReads.Inc()
	if m.roleLabels.Load() {
		m.roleCredsReads.WithLabelValues(role).Inc()
	}
}

// TokenRead counts a read of token/<name>, answered from the cache (hit) or not.
func (m *Metrics) TokenRead(hit bool) {
	m.tokenReads.Inc()
	if hit {
		m.tokenHits.Inc()
	} else {
		m.tokenMisses.Inc()
	}
}

// TokenFetch counts an access token token/ asked Auth0 for.
func (m *Metrics) TokenFetch() { m.tokenFetches.Inc() }

// ForgetRole drops a deleted role's series.
func (m *Metrics) ForgetRole(role string) {
	m.roleCredsReads.DeleteLabelValues(role)
	for _, outcome := range []string{"rotated", "unchanged", "refused", "failed"} {
		m.roleRotations.DeleteLabelValues(role, outcome)
	}
}

// Text is every metric in Prometheus' text exposition format (ContentType).
func (m *Metrics) Text() ([]byte, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// statusClass is the label of an HTTP status: 429 on its own, the others by class.
func statusClass(status int) string {
	switch {
	case status == 0:
		return "error"
	case status == 429:
		return "429"
	case status < 100 || status > 599:
		return strconv.Itoa(status)
	}
	return strconv.Itoa(status/100) + "xx"
}

// healthCollector reports Health as gauges, read at each scrape.
type healthCollector struct{ health func() Health }

var healthDescs = []struct {
	desc  *prometheus.Desc
	value func(Health) int
}{
	{prometheus.NewDesc(namespace+"_roles", "Roles of the mount, as this node's scheduler knows them (0 on a node that does not rotate: a standby).", nil, nil), func(h Health) int { return h.Roles }},
	{prometheus.NewDesc(namespace+"_queue_size", "Roles with a due time in the rotation queue.", nil, nil), func(h Health) int { return h.Queued }},
	{prometheus.NewDesc(namespace+"_roles_overdue", "Roles whose due time passed more than a minute ago: the scheduler is behind, or held back by Auth0's rate limit.", nil, nil), func(h Health) int { return h.Overdue }},
	{prometheus.NewDesc(namespace+"_roles_failing", "Roles whose last rotation attempt failed (retried with backoff).", nil, nil), func(h Health) int { return h.Failing }},
	{prometheus.NewDesc(namespace+"_roles_drifted", "Roles whose credential the last drift check found Auth0 no longer holds (rotated or detached outside Vault).", nil, nil), func(h Health) int { return h.Drifted }},
	{prometheus.NewDesc(namespace+"_roles_blocked", "Roles not rotated until their operator acts (auth0/status says why).", nil, nil), func(h Health) int { return h.Halted }},
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range healthDescs {
		ch <- d.desc
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.health()
	for _, d := range healthDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(d.value(h)))
	}
}
