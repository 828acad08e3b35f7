package approval

import (
	"context"
	"net/http"
	"net/url"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/guard"
)

// Client calls the approvals and kill switch API (used by the CLI).
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// List returns pending requests (all of them with all).
func (c *Client) List(ctx context.Context, all bool) ([]Request, error) {
	var out struct {
		Approvals []Request `json:"approvals"`
	}
	p := "/api/v1/approvals"
	if all {
		p += "?all=1"
	}
	return out.Approvals, c.do(ctx, http.MethodGet, p, nil, &out)
}

// Get returns one request.
func (c *Client) Get(ctx context.Context, id string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodGet, "/api/v1/approvals/"+url.PathEscape(id), nil, &out)
}

// Approve approves a request.
func (c *Client) Approve(ctx context.Context, id, reason string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/approve", reasonBody{Reason: reason}, &out)
}

// Reject rejects a request.
func (c *Client) Reject(ctx context.Context, id, reason string) (Request, error) {
	var out Request
	return out, c.do(ctx, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/reject", reasonBody{Reason: reason}, &out)
}

// Pause turns the kill switch on.
func (c *Client) Pause(ctx context.Context, reason string) (guard.State, error) {
	var out guard.State
	return out, c.do(ctx, http.MethodPost, "/api/v1/pause", reasonBody{Reason: reason}, &out)
}

// Resume turns the kill switch off (kind empty) or closes a kind's storm breaker.
func (c *Client) Resume(ctx context.Context, kind, reason string) (guard.State, error) {
	var out guard.State
	return out, c.do(ctx, http.MethodPost, "/api/v1/resume", reasonBody{Reason: reason, Kind: kind}, &out)
}

func (c *Client) do(ctx context.Context, method, path string, body, v any) error {
	return (&api.Client{BaseURL: c.BaseURL, Token: c.Token, HTTP: c.HTTP}).Call(ctx, method, path, body, v)
}
