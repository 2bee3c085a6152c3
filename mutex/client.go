package mutex

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// Client is a blocking client of one node's Ricart–Agrawala protocol, for
// code outside the protocols (tests, examples, HTTP handlers): [Enter],
// [Release] and [StatusRequest] through actors.Call, with the withdrawal a
// Lock that gives up needs. A Client is safe for concurrent use; its Lock
// calls queue on the node one after the other.
type Client struct {
	node *actors.Node
	ref  actors.Ref
}

// NewClient returns a client of the protocol named protocol on node (""
// means Name), which must be running.
func NewClient(node *actors.Node, protocol actors.ProtocolName) (*Client, error) {
	ref, err := node.Ref(cmp.Or(protocol, Name))
	if err != nil {
		return nil, fmt.Errorf("mutex: %w", err)
	}
	return &Client{node: node, ref: ref}, nil
}

// Lock waits until the node enters the critical section and returns the
// grant that Unlock needs. It waits as long as ctx lets it (without a
// deadline, asking again with the same Ticket each time the node's
// RequestTimeout runs out).
// When ctx ends first, the request is withdrawn (released, if it was
// granted meanwhile) and the error wraps ctx's.
func (c *Client) Lock(ctx context.Context) (Grant, error) {
	t := new(Ticket)
	for {
		g, err := actors.Call(ctx, c.node, c.ref.Protocol(), Enter{Ticket: t})
		if err == nil {
			return g, nil
		}
		if errors.Is(err, actors.ErrTimeout) && ctx.Err() == nil {
			continue // the node's RequestTimeout (ctx has no deadline): wait on, same Ticket
		}
		// The Enter still waits, or was granted meanwhile: the Withdraw
		// follows it into the mailbox and ends either.
		c.withdraw(t)
		return Grant{}, fmt.Errorf("mutex: entering on %s: %w", c.node.Name(), cmp.Or(ctx.Err(), err))
	}
}

func (c *Client) withdraw(t *Ticket) {
	_ = c.ref.Tell(&Withdraw{Ticket: t}) // fails only when the protocol stopped, and its Enters with it
}

// Unlock leaves the critical section held by g. It fails with ErrNotHolder
// when g does not hold it.
func (c *Client) Unlock(ctx context.Context, g Grant) error {
	if _, err := actors.Call(ctx, c.node, c.ref.Protocol(), Release{Grant: g}); err != nil {
		return fmt.Errorf("mutex: leaving on %s: %w", c.node.Name(), err)
	}
	return nil
}

// Status returns the node's state of the protocol.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return actors.Call(ctx, c.node, c.ref.Protocol(), StatusRequest{})
}
