package vaulttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// TryDo is Do for servers that may die or not be ready: it returns
// transport and decoding errors instead of failing the test, and gives up
// after timeout (0: two minutes). It does not touch a testing.TB, so any
// goroutine may call it.
func (v *Vault) TryDo(token, method, path string, body map[string]any, timeout time.Duration) (*Response, error) {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.Addr+"/v1/"+strings.TrimPrefix(path, "/"), reqBody)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, v.Addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: reading body: %w", method, path, v.Addr, err)
	}
	r := &Response{Status: resp.StatusCode, Raw: raw}
	if len(bytes.TrimSpace(raw)) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		return nil, fmt.Errorf("%s %s on %s: status %d, undecodable body %q: %w", method, path, v.Addr, resp.StatusCode, raw, err)
	}
	r.Data, _ = r.Body["data"].(map[string]any)
	r.Auth, _ = r.Body["auth"].(map[string]any)
	r.Errors = stringList(r.Body["errors"])
	r.Warnings = stringList(r.Body["warnings"])
	return r, nil
}
