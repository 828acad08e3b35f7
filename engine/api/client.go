package api

import (
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
	resp, err := c.do(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// do sends an authenticated GET and returns the response of a 200, or the server's error.
func (c *Client) do(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, err
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
