package remote

import (
	"errors"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupe-dev/troupe/messages"
)

// Handing batches to protoactor's endpoint writer.
//
// What one protocol of a node sends one node at one address goes through
// a stream. An outbox's flush queues the entries on the stream and sends
// protoactor a token, the stream itself: protoactor's endpoint writer
// turns the token into the Batch it carries (remote.RootSerializable) when
// it gets to it, on its own goroutine. While a token waits in the writer's
// mailbox, later flushes add their entries to the batch it will take, so
// what several events sent leaves as one Batch, one protoactor message,
// whenever the writer is busy (as it is under load); an idle writer takes
// each flush's batch at once, as before. Each flush still hands its
// entries to the network when its handler returns, and they leave in the
// order they were sent.
//
// A token protoactor drops (a dead letter: the writer is not connected, or
// its manager stopped) drops the batch it would have taken; a connection
// that breaks drops every queued batch of the address (reset), as
// protoactor drops what its writer held. A token lost any other way would
// leave its batch waiting: a flush that finds no token taken for
// stuckAfter sends one more. A token that finds nothing (its batch taken by
// an earlier one) sends a Batch without envelopes, which the receiver
// ignores. (A token lost for good would cost one batch's worth of delay at
// most 64 KiB long: past flushAt a flush starts a batch with a token of its
// own, and each token takes the oldest batch.)

// stuckAfter is how long a stream waits for protoactor to take a token
// before a flush sends another.
const stuckAfter = time.Second

// stream is the batches one protocol of a node sends one node at one
// address, between flushes and protoactor's endpoint writer.
type stream struct {
	names []byte // "from/to/protocol"

	mu     sync.Mutex
	queued [][]byte // batches' entries, oldest first; each has a token on its way
	tokens int      // tokens sent and not yet taken or dropped
	taken  uint64   // tokens taken so far
	joined int      // flushes added to the newest batch after its own

	// The last look at the clock (stuck): taken then, and when.
	seen  uint64
	since time.Time
}

// put queues the entries of a flush. It reports whether a token must be
// sent for them, and gives back a buffer the outbox may fill next (their
// own, when they were copied into a waiting batch).
func (s *stream) put(entries []byte) (token bool, reuse []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.queued); n > 0 && s.tokens >= n && len(s.queued[n-1])+len(entries) <= flushAt {
		s.queued[n-1] = append(s.queued[n-1], entries...)
		s.joined++
		// The clock is read on the 1st, 2nd, 4th, 8th... flush joining a
		// batch, not on each: a read costs as much as the rest of put.
		if s.joined&(s.joined-1) == 0 && s.stuck() {
			s.tokens++
			return true, entries[:0]
		}
		return false, entries[:0]
	}
	s.queued = append(s.queued, entries)
	s.joined = 0
	if s.tokens >= len(s.queued) {
		return false, nil
	}
	s.tokens++
	return true, nil
}

// stuck reports whether protoactor took no token since the previous look,
// stuckAfter or more ago.
func (s *stream) stuck() bool {
	now := time.Now()
	if s.taken != s.seen || s.since.IsZero() {
		s.seen, s.since = s.taken, now
		return false
	}
	if now.Sub(s.since) < stuckAfter {
		return false
	}
	s.since = now
	return true
}

// take removes the oldest batch's entries (nil when none waits).
func (s *stream) take() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = max(s.tokens-1, 0)
	s.taken++
	if len(s.queued) == 0 {
		return nil
	}
	b := s.queued[0]
	n := copy(s.queued, s.queued[1:])
	s.queued[n] = nil
	s.queued = s.queued[:n]
	return b
}

// reset drops every queued batch: the connection they were for broke.
// Tokens still on their way find nothing.
func (s *stream) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.queued)
	s.queued = s.queued[:0]
	s.tokens = 0
}

// Serialize is called by protoactor's endpoint writer, on its goroutine,
// for each token it sends: the token becomes the oldest waiting batch.
func (s *stream) Serialize() (remote.RootSerialized, error) {
	return wireBatch{&messages.Batch{Names: s.names, Envelopes: s.take()}}, nil
}

var _ remote.RootSerializable = (*stream)(nil)

// wireBatch is a Batch as protoactor's writer encodes it: a protobuf
// message (the Batch's) that is also a remote.RootSerialized. Receivers
// decode a plain Batch, so its Deserialize is never called.
type wireBatch struct{ *messages.Batch }

func (wireBatch) Deserialize() (remote.RootSerializable, error) {
	return nil, errors.New("remote: a troupe.v1.Batch is decoded as itself")
}

// stream returns the stream of the batches named names to the address of
// l, making it the first time.
func (e *endpoint) stream(l *link, names []byte) *stream {
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	s := l.streams[string(names)]
	if s == nil {
		if l.streams == nil {
			l.streams = map[string]*stream{}
		}
		s = &stream{names: names}
		l.streams[string(names)] = s
	}
	return s
}
