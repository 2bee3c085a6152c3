package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// Client is a blocking client of one node's raft protocol, for code outside
// the protocols (HTTP handlers, tests, tools): the group's status and its
// operator actions. The clients of hosted machines (package kv's, package
// mutex's Leases) call the protocol the same way, with [Call]. A Client is
// safe for concurrent use.
type Client struct {
	node *actors.Node
}

// NewClient returns a client of node's raft protocol, which must be
// running.
func NewClient(node *actors.Node) (*Client, error) {
	if _, err := node.Ref(Name); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &Client{node: node}, nil
}

// Node is the node the client talks to.
func (c *Client) Node() *actors.Node { return c.node }

// Status returns the node's view of the group.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return actors.Call(ctx, c.node, Name, StatusRequest{})
}

// Admin performs an operator action. Send it to the leader: other nodes
// answer a NotLeaderError naming it.
func (c *Client) Admin(ctx context.Context, action AdminAction, node actors.NodeName) error {
	_, err := Call(ctx, c.node, AdminRequest{Action: action, Node: node}, func() string { return fmt.Sprintf("%s %s", action, node) })
	return err
}

// noDeadline bounds the wait of a call whose ctx has none. The protocol
// answers every request within its RequestTimeout (and a tick), or when it
// stops; this only ends the wait on a node that is stuck.
const noDeadline = time.Hour

// Call is actors.Call of req to the raft protocol of node (a request a
// hosted machine registered, or one of the protocol's own), with the
// runtime's errors told in this package's terms: the wait ran out or the
// protocol lost the request (a restart) — ErrTimeout and ErrStopped, the
// outcome unknown —, or no raft protocol runs, or it hosts no machine that
// serves req (nothing was asked). The
// protocol's and the machine's own errors come as they are. what describes
// the request, for errors. Give ctx a deadline a little beyond
// Config.RequestTimeout: the protocol answers by then, knowing whether a
// write left the node; a ctx without a deadline waits for its answer.
func Call[Req actors.Asks[Rep], Rep any](ctx context.Context, node *actors.Node, req Req, what func() string) (Rep, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, noDeadline)
		defer cancel()
	}
	rep, err := actors.Call(ctx, node, Name, req)
	switch {
	case err == nil:
		return rep, nil
	case errors.Is(err, actors.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		err = fmt.Errorf("%w: %s on %s: %v", ErrTimeout, what(), node.Name(), err)
	case errors.Is(err, actors.ErrUnanswered), errors.Is(err, actors.ErrHandlerPanicked):
		err = fmt.Errorf("%w: %s on %s: %v", ErrStopped, what(), node.Name(), err)
	case errors.Is(err, actors.ErrNoHandler):
		err = fmt.Errorf("consensus: %s: the raft protocol on %s serves no %T: no machine it hosts registered it (Config.Machines): %w", what(), node.Name(), req, err)
	case errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrProtocolStopped), errors.Is(err, actors.ErrNodeStopped):
		err = fmt.Errorf("consensus: %s: %w", what(), err)
	}
	return rep, err
}
