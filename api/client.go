package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/jobs"
)

// Client talks JSON to one node's HTTP API (the node CLI and the benches
// use it).
type Client struct {
	// Base is the node's URL, e.g. "http://127.0.0.1:8080".
	Base string
	// HTTP sends the requests; its Timeout bounds each one (default 30s).
	HTTP *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
}

// NewClient returns a client of the node at base ("host:port" or a URL).
func NewClient(base string) *Client {
	base = strings.TrimRight(base, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{Base: base, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends body (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). Any other answer becomes an error carrying the API's message.
// It returns the HTTP status.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	return c.Send(ctx, method, path, "application/json", rd, out)
}

// Send is Do with a body of any content type (nil for none).
func (c *Client) Send(ctx context.Context, method, path, contentType string, body io.Reader, out any) (int, error) {
	code, _, err := c.send(ctx, method, path, contentType, body, out)
	return code, err
}

// ListJobs lists the cluster's jobs through the node (GET /v1/jobs), with
// the members whose jobs are missing or cut from its headers.
func (c *Client) ListJobs(ctx context.Context) (jobs.JobList, error) {
	var l jobs.JobList
	_, h, err := c.send(ctx, http.MethodGet, "/v1/jobs", "application/json", nil, &l.Jobs)
	if err != nil {
		return l, err
	}
	l.Missing, l.Truncated = namesOf(h.Get(MissingHeader)), namesOf(h.Get(TruncatedHeader))
	return l, nil
}

func namesOf(v string) []actors.NodeName {
	var out []actors.NodeName
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, actors.NodeName(n))
		}
	}
	return out
}

func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader, out any) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusUnauthorized {
				return resp.StatusCode, resp.Header, fmt.Errorf("%w: %s %s: %s (HTTP 401)", ErrUnauthorized, method, path, e.Error)
			}
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %s (HTTP %d)", method, path, e.Error, resp.StatusCode)
		}
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}
