package consensus

import (
	"context"
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// KV is a blocking client of one node's raft protocol, for code outside
// the protocols (HTTP handlers, tests, benchmarks). Every method waits for
// the outcome or for ctx; when ctx ends first the error wraps ErrTimeout
// (the write may still be applied). A KV is safe for concurrent use.
type KV struct {
	node *actors.Node
	ref  actors.Ref
}

// NewKV returns a client of node's raft protocol, which must be running.
func NewKV(node *actors.Node) (*KV, error) {
	ref, err := node.Ref(ProtocolName)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &KV{node: node, ref: ref}, nil
}

// Node is the node the client talks to.
func (k *KV) Node() *actors.Node { return k.node }

// Do sends one request and waits for its result. req.Done is set by Do.
func (k *KV) Do(ctx context.Context, req Request) (Result, error) {
	ch := make(chan Result, 1)
	req.Done = func(r Result) { ch <- r }
	if err := k.ref.Tell(&req); err != nil {
		return Result{}, fmt.Errorf("consensus: %s %q: %w", req.Op, req.Key, err)
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %s %q on %s: %v", ErrTimeout, req.Op, req.Key, k.node.Name(), ctx.Err())
	}
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

// Status returns the node's view of the group.
func (k *KV) Status(ctx context.Context) (Status, error) {
	return actors.Call(ctx, k.node, ProtocolName, StatusRequest{})
}

// Admin performs an operator action. Send it to the leader: other nodes
// answer a NotLeaderError naming it.
func (k *KV) Admin(ctx context.Context, action AdminAction, node string) error {
	ch := make(chan error, 1)
	req := &AdminRequest{Action: action, Node: node, Done: func(err error) { ch <- err }}
	if err := k.ref.Tell(req); err != nil {
		return fmt.Errorf("consensus: %s %s: %w", action, node, err)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %s %s on %s: %v", ErrTimeout, action, node, k.node.Name(), ctx.Err())
	}
}
