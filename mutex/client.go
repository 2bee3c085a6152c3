package mutex

import (
	"cmp"
	"context"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// Client is a blocking client of one node's Ricart–Agrawala protocol, for
// code outside the protocols (tests, examples, HTTP handlers). A Client is
// safe for concurrent use; its Lock calls queue on the node one after the
// other.
type Client struct {
	node *actors.Node
	ref  actors.Ref
}

// NewClient returns a client of the protocol named protocol on node (""
// means ProtocolName), which must be running.
func NewClient(node *actors.Node, protocol string) (*Client, error) {
	ref, err := node.Ref(cmp.Or(protocol, ProtocolName))
	if err != nil {
		return nil, fmt.Errorf("mutex: %w", err)
	}
	return &Client{node: node, ref: ref}, nil
}

// Lock waits until the node enters the critical section and returns the
// grant that Unlock needs. When ctx ends first, the request is withdrawn
// (released, if it was granted meanwhile) and the error wraps ctx's.
func (c *Client) Lock(ctx context.Context) (Grant, error) {
	type result struct {
		g   Grant
		err error
	}
	ch := make(chan result, 1)
	e := &Enter{Done: func(g Grant, err error) { ch <- result{g, err} }}
	if err := c.ref.Tell(e); err != nil {
		return Grant{}, fmt.Errorf("mutex: entering on %s: %w", c.node.Name(), err)
	}
	select {
	case r := <-ch:
		return r.g, r.err
	case <-ctx.Done():
		_ = c.ref.Tell(&Withdraw{Enter: e})
		return Grant{}, fmt.Errorf("mutex: entering on %s: %w", c.node.Name(), ctx.Err())
	}
}

// Unlock leaves the critical section held by g. It fails with ErrNotHolder
// when g does not hold it.
func (c *Client) Unlock(ctx context.Context, g Grant) error {
	ch := make(chan error, 1)
	if err := c.ref.Tell(&Release{Grant: g, Done: func(err error) { ch <- err }}); err != nil {
		return fmt.Errorf("mutex: leaving on %s: %w", c.node.Name(), err)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("mutex: leaving on %s: %w", c.node.Name(), ctx.Err())
	}
}

// Status returns the node's state of the protocol.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return actors.Call(ctx, c.node, c.ref.Protocol(), StatusRequest{})
}
