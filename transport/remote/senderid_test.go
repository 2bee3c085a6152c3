package remote

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// FuzzSenderID feeds the inbox's parser of sender PIDs (which come from the
// network) arbitrary Ids: it must not panic, and what it accepts must be
// what senderID would have written.
func FuzzSenderID(f *testing.F) {
	f.Add("a/b/p/troupe.examples.v1.Ping")
	f.Add("a/b/p/")
	f.Add("//")
	f.Add("a/b/p/x/y")
	f.Fuzz(func(t *testing.T, id string) {
		nm := parseSenderID(actor.NewPID("127.0.0.1:1", id))
		if nm.err != nil {
			return
		}
		if got := senderID(nm.from, nm.to, nm.protocol, nm.typ); got != id {
			t.Fatalf("%q parsed into %+v, which writes back as %q", id, nm, got)
		}
	})
}
