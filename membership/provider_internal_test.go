package membership

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupe-dev/troupe/actors"
)

// TestProviderIDs checks the Ids the provider gives protoactor: stable
// while a member stays live (also across a refutation that raises its
// incarnation), new when the same start re-enters the list after a
// failure, so that protoactor, which blocks Ids that left, takes it back
// (checked on a protoactor member list), new for a restart or a change of
// kinds, and no member without a remote address.
func TestProviderIDs(t *testing.T) {
	s := ids{listed: map[actors.NodeName]listing{}, entries: map[actors.NodeName]entries{}}
	member := func(name actors.NodeName, gen uint64, inc uint32, st State) Member {
		return Member{Name: name, Address: "127.0.0.1:7" + string(name[len(name)-1]) + "00", Kinds: []string{"b", "a"}, Generation: gen, Incarnation: inc, State: st}
	}
	// A protoactor cluster, not started, whose member list blocks as it
	// does for real: the list the provider gives must be the list it holds.
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	c := cluster.New(sys, cluster.Configure("test", nil, nil, nil))
	c.Remote = remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	list := func(ms ...Member) []string {
		var out []string
		members := s.members(View{Members: ms})
		for _, m := range members {
			out = append(out, m.Id)
		}
		c.MemberList.UpdateClusterTopology(members)
		var held []string
		for _, m := range c.MemberList.Members().Members() {
			held = append(held, m.Id)
		}
		slices.Sort(held)
		if !slices.Equal(held, out) {
			t.Errorf("protoactor's member list holds %v of %v (blocked: %v)", held, out, c.GetBlockedMembers().ToSlice())
		}
		return out
	}
	check := func(step string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: protoactor's list %v, want %v", step, got, want)
		}
	}
	check("start", list(member("n1", 5, 1, Alive), member("n2", 7, 1, Alive), Member{Name: "sim", State: Alive}),
		"n1@5.0", "n2@7.0")
	check("n2 suspected, then refutes with a higher incarnation", list(member("n1", 5, 1, Alive), member("n2", 7, 2, Suspect)),
		"n1@5.0", "n2@7.0")
	check("n2 declared failed", list(member("n1", 5, 1, Alive), member("n2", 7, 2, Failed)), "n1@5.0")
	check("n2 refutes: the same start re-enters under a new Id", list(member("n1", 5, 1, Alive), member("n2", 7, 3, Alive)),
		"n1@5.0", "n2@7.1")
	n1 := member("n1", 5, 1, Alive)
	n1.Kinds = []string{"a"}
	check("n1 changes its kinds", list(n1, member("n2", 7, 3, Alive)), "n1@5.1", "n2@7.1")
	check("n1 changes them back", list(member("n1", 5, 1, Alive), member("n2", 7, 3, Alive)), "n1@5.2", "n2@7.1")
	check("n2 restarts", list(member("n1", 5, 1, Alive), member("n2", 9, 1, Alive)), "n1@5.2", "n2@9.0")
	check("n2 left", list(member("n1", 5, 1, Alive), member("n2", 9, 1, Left)), "n1@5.2")
	check("n2's start comes back", list(member("n1", 5, 1, Alive), member("n2", 9, 1, Alive)), "n1@5.2", "n2@9.1")

	got := s.members(View{Members: []Member{member("n1", 5, 1, Alive)}})
	want := &cluster.Member{Id: "n1@5.2", Host: "127.0.0.1", Port: 7100, Kinds: []string{"a", "b"}}
	if len(got) != 1 || got[0].Id != want.Id || got[0].Host != want.Host || got[0].Port != want.Port || !slices.Equal(got[0].Kinds, want.Kinds) {
		t.Errorf("member %v, want %v", got, want)
	}
}
