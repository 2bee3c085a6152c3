package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

// KV is a blocking client of one node's raft protocol, for code outside
// the protocols (HTTP handlers, tests, benchmarks): each method is an
// actors.Call of a [Request] (or [LockRequest], [AdminRequest],
// [StatusRequest]) to [Name] that waits for the protocol's answer
// or for ctx. Give ctx a deadline a little beyond Config.RequestTimeout
// (HTTPHandler waits a second more): the protocol answers by then,
// knowing whether a write left the node. When ctx ends first the error
// wraps ErrTimeout (the write may still be applied); a ctx without a
// deadline waits for the protocol's answer. A KV is safe for concurrent
// use.
type KV struct {
	node *actors.Node
}

// NewKV returns a client of node's raft protocol, which must be running.
func NewKV(node *actors.Node) (*KV, error) {
	if _, err := node.Ref(Name); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &KV{node: node}, nil
}

// Node is the node the client talks to.
func (k *KV) Node() *actors.Node { return k.node }

// Do sends one request and waits for its result.
func (k *KV) Do(ctx context.Context, req Request) (Result, error) {
	return call(ctx, k.node, req, func() string { return fmt.Sprintf("%s %q", req.Op, req.Key) })
}

// Get reads key linearizably: the value of the latest write acknowledged
// before Get began, or a later one. found is false for an absent key.
func (k *KV) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	r, err := k.Do(ctx, Request{Op: OpGet, Key: key})
	return r.Value, r.Found, err
}

// Put sets key to value and returns the log index it was applied at.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	r, err := k.Do(ctx, Request{Op: OpPut, Key: key, Value: value})
	return r.Index, err
}

// Delete removes key; existed tells whether it was there.
func (k *KV) Delete(ctx context.Context, key string) (existed bool, err error) {
	r, err := k.Do(ctx, Request{Op: OpDelete, Key: key})
	return r.Found, err
}

// CAS sets key to value if it holds prev. swapped is false when it did not
// (an absent key never matches); current is then its value and found
// whether it exists.
func (k *KV) CAS(ctx context.Context, key string, prev, value []byte) (swapped bool, current []byte, found bool, err error) {
	r, err := k.Do(ctx, Request{Op: OpCAS, Key: key, Prev: prev, Value: value})
	return r.OK, r.Value, r.Found, err
}

// Lock performs one operation on a lease lock (package mutex's Leases is
// the client to use).
func (k *KV) Lock(ctx context.Context, req LockRequest) (LockResult, error) {
	return call(ctx, k.node, req, func() string { return fmt.Sprintf("%s of lock %q", req.Op, req.Name) })
}

// Status returns the node's view of the group.
func (k *KV) Status(ctx context.Context) (Status, error) {
	return actors.Call(ctx, k.node, Name, StatusRequest{})
}

// Admin performs an operator action. Send it to the leader: other nodes
// answer a NotLeaderError naming it.
func (k *KV) Admin(ctx context.Context, action AdminAction, node actors.NodeName) error {
	_, err := call(ctx, k.node, AdminRequest{Action: action, Node: node}, func() string { return fmt.Sprintf("%s %s", action, node) })
	return err
}

// noDeadline bounds the wait of a call whose ctx has none. The protocol
// answers every request within its RequestTimeout (and a tick), or when it
// stops; this only ends the wait on a node that is stuck.
const noDeadline = time.Hour

// call is actors.Call to the raft protocol of node, with the runtime's
// errors told in this package's terms: the wait ran out or the protocol
// lost the request (a restart) — ErrTimeout and ErrStopped, the outcome
// unknown —, or no raft protocol runs (nothing was asked). The protocol's
// own errors come as they are. what describes the request, for errors.
func call[Req actors.Asks[Rep], Rep any](ctx context.Context, node *actors.Node, req Req, what func() string) (Rep, error) {
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
	case errors.Is(err, actors.ErrUnknownProtocol), errors.Is(err, actors.ErrProtocolStopped), errors.Is(err, actors.ErrNodeStopped):
		err = fmt.Errorf("consensus: %s: %w", what(), err)
	}
	return rep, err
}
