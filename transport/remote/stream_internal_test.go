package remote

import (
	"bytes"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/messages"
)

// serialize is what protoactor's writer does with a token: Serialize, then
// protobuf's encoding of the result; it returns the Batch decoded again.
func serialize(t *testing.T, s *stream) *messages.Batch {
	t.Helper()
	rs, err := s.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	pm, ok := rs.(proto.Message)
	if !ok {
		t.Fatalf("Serialize gave a %T, which protoactor's protobuf serializer cannot encode", rs)
	}
	if got := proto.MessageName(pm); string(got) != batchTypeName {
		t.Fatalf("Serialize gave a %s, want %s", got, batchTypeName)
	}
	b, err := proto.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	var out messages.Batch
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestStreamCoalescesFlushesWhileATokenWaits(t *testing.T) {
	s := &stream{names: []byte("a/b/p")}
	if token, _ := s.put([]byte("one")); !token {
		t.Fatal("the first flush sent no token")
	}
	buf := []byte("two")
	token, reuse := s.put(buf)
	if token {
		t.Fatal("a flush while a token waits sent another")
	}
	if cap(reuse) == 0 || &reuse[:1][0] != &buf[0] {
		t.Fatal("a flush copied into the waiting batch did not give its buffer back")
	}
	if token, _ := s.put([]byte("three")); token {
		t.Fatal("a third flush sent a token")
	}
	b := serialize(t, s)
	if string(b.Names) != "a/b/p" || string(b.Envelopes) != "onetwothree" {
		t.Fatalf("the token took %q %q, want the three flushes in order", b.Names, b.Envelopes)
	}
	if b := serialize(t, s); len(b.Envelopes) != 0 {
		t.Fatalf("a second take found %q, want nothing", b.Envelopes)
	}
	if token, _ := s.put([]byte("four")); !token {
		t.Fatal("a flush after the token was taken sent none")
	}
	if b := serialize(t, s); string(b.Envelopes) != "four" {
		t.Fatalf("took %q, want four", b.Envelopes)
	}
}

func TestStreamStartsABatchPastFlushAt(t *testing.T) {
	s := &stream{names: []byte("a/b/p")}
	big := bytes.Repeat([]byte{'x'}, flushAt)
	if token, _ := s.put(big); !token {
		t.Fatal("no token for the first batch")
	}
	if token, _ := s.put([]byte("y")); !token {
		t.Fatal("a flush past flushAt joined a full batch instead of starting one with its own token")
	}
	if b := serialize(t, s); len(b.Envelopes) != flushAt {
		t.Fatalf("the first token took %d bytes, want %d", len(b.Envelopes), flushAt)
	}
	if b := serialize(t, s); string(b.Envelopes) != "y" {
		t.Fatalf("the second token took %q, want y", b.Envelopes)
	}
}

func TestStreamDeadLetterDropsItsBatch(t *testing.T) {
	s := &stream{names: []byte("a/b/p")}
	s.put([]byte("lost"))
	(&endpoint{}).onEvent(&actor.DeadLetterEvent{Message: s})
	if s.tokens != 0 || len(s.queued) != 0 {
		t.Fatalf("after the dead letter: %d tokens, %d batches; want none", s.tokens, len(s.queued))
	}
	if token, _ := s.put([]byte("next")); !token {
		t.Fatal("a flush after a dropped token sent none: the stream is stuck")
	}
	if b := serialize(t, s); string(b.Envelopes) != "next" {
		t.Fatalf("took %q, want next", b.Envelopes)
	}
}

func TestStreamResetDropsQueuedBatches(t *testing.T) {
	s := &stream{names: []byte("a/b/p")}
	s.put([]byte("old"))
	s.put([]byte("older"))
	s.reset()
	if token, _ := s.put([]byte("new")); !token {
		t.Fatal("a flush after a reset sent no token: the stream is stuck")
	}
	// The token sent before the reset arrives first: it takes the new
	// batch, and the new token finds nothing.
	if b := serialize(t, s); string(b.Envelopes) != "new" {
		t.Fatalf("took %q, want new", b.Envelopes)
	}
	if b := serialize(t, s); len(b.Envelopes) != 0 {
		t.Fatalf("took %q, want nothing", b.Envelopes)
	}
}

func TestStreamSendsAnotherTokenWhenOneIsStuck(t *testing.T) {
	s := &stream{names: []byte("a/b/p")}
	s.put([]byte("one")) // its token never comes back
	if token, _ := s.put([]byte("two")); token {
		t.Fatal("a token at the first look at the clock")
	}
	s.since = s.since.Add(-2 * stuckAfter) // that look was long ago
	if token, _ := s.put([]byte("three")); !token {
		t.Fatalf("no new token after %v without one taken", 2*stuckAfter)
	}
	if b := serialize(t, s); string(b.Envelopes) != "onetwothree" {
		t.Fatalf("took %q, want onetwothree", b.Envelopes)
	}
	// A token taken since the last look is progress: no spare token, however
	// long ago that look was.
	s.put([]byte("four")) // joins nothing: the spare token will take it
	s.put([]byte("five")) // first look: remembers taken
	s.since = s.since.Add(-2 * stuckAfter)
	s.take()
	s.put([]byte("six"))   // a new batch, and its token
	s.put([]byte("seven")) // a look: taken moved
	if s.tokens != 1 {
		t.Fatalf("%d tokens on their way, want six's alone", s.tokens)
	}
}
