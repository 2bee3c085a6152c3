package kv

import (
	"context"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/consensus"
)

// Client is a blocking client of the key-value store on one node's raft
// protocol, for code outside the protocols (HTTP handlers, tests,
// benchmarks): each method is an actors.Call of a [Request] to
// consensus.Name that waits for the protocol's answer or for ctx
// (consensus.Call). Give ctx a deadline a little beyond
// consensus.Config.RequestTimeout (HTTPHandler waits a second more): the
// protocol answers by then, knowing whether a write left the node. When
// ctx ends first the error wraps consensus.ErrTimeout (the write may still
// be applied); a ctx without a deadline waits for the protocol's answer. A
// Client is safe for concurrent use.
type Client struct {
	*consensus.Client // Status and Admin of the group
}

// NewClient returns a client of node's key-value store. The node's raft
// protocol must be running (hosting [Machine]).
func NewClient(node *actors.Node) (*Client, error) {
	c, err := consensus.NewClient(node)
	if err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	return &Client{Client: c}, nil
}

// Do sends one request and waits for its result.
func (c *Client) Do(ctx context.Context, req Request) (Result, error) {
	return consensus.Call(ctx, c.Node(), req, func() string { return fmt.Sprintf("%s %q", req.Op, req.Key) })
}

// Get reads key linearizably: the value of the latest write acknowledged
// before Get began, or a later one. found is false for an absent key.
func (c *Client) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	r, err := c.Do(ctx, Request{Op: OpGet, Key: key})
	return r.Value, r.Found, err
}

// Put sets key to value and returns the log index it was applied at.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	r, err := c.Do(ctx, Request{Op: OpPut, Key: key, Value: value})
	return r.Index, err
}

// Delete removes key; existed tells whether it was there.
func (c *Client) Delete(ctx context.Context, key string) (existed bool, err error) {
	r, err := c.Do(ctx, Request{Op: OpDelete, Key: key})
	return r.Found, err
}

// CAS sets key to value if it holds prev. swapped is false when it did not
// (an absent key never matches); current is then its value and found
// whether it exists.
func (c *Client) CAS(ctx context.Context, key string, prev, value []byte) (swapped bool, current []byte, found bool, err error) {
	r, err := c.Do(ctx, Request{Op: OpCAS, Key: key, Prev: prev, Value: value})
	return r.OK, r.Value, r.Found, err
}

// Browse lists keys of the local replica (a [BrowseRequest]).
func (c *Client) Browse(ctx context.Context, req BrowseRequest) (Browse, error) {
	return consensus.Call(ctx, c.Node(), req, func() string { return fmt.Sprintf("browse %q", req.Prefix) })
}
