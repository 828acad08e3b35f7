package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/remedyhq/remedy/engine/audit"
)

// Client reads the engine's HTTP API (used by the CLI).
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// Events queries the audit log with the query parameters of ParseFilter.
func (c *Client) Events(ctx context.Context, q url.Values) ([]audit.Event, error) {
	var out struct {
		Events []audit.Event `json:"events"`
	}
	if err := c.get(ctx, "/api/v1/audit/events?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.Call(ctx, http.MethodGet, path, nil, v)
}

func (c *Client) do(ctx context.Context, path string) (*http.Response, error) {
	return c.Do(ctx, http.MethodGet, path, nil)
}

// Call sends an authenticated request with body (JSON, when not nil) and decodes the
// JSON of a 200 into v; any other status is an error carrying the server's message.
func (c *Client) Call(ctx context.Context, method, path string, body, v any) error {
	resp, err := c.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// Do sends an authenticated request with body (JSON, when not nil) and returns the
// response of a 200, or the server's error.
func (c *Client) Do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remedy server %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) == nil && e.Error != "" {
		return nil, fmt.Errorf("remedy server: %s: %s", resp.Status, e.Error)
	}
	return nil, fmt.Errorf("remedy server: %s", resp.Status)
}
