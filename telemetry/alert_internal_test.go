package telemetry

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
)

func TestHistoryKeepsOnePerFactAndForgetsTheOldest(t *testing.T) {
	h := newHistory(3)
	at := time.Unix(100, 0)
	mk := func(origin actors.NodeName, key string) *Alert {
		return &Alert{ID: string(origin) + "/" + key, Key: key, Kind: JobFailed, RaisedBy: origin, Started: at, Severity: Warning, Reporters: []actors.NodeName{origin}}
	}
	h.add(mk("n1", "k1"))
	h.add(mk("n2", "k1"))
	if h.add(mk("n2", "k1")) {
		t.Error("a copy heard twice changed the history")
	}
	if got := h.newest(0); len(got) != 1 || !slices.Equal(got[0].Reporters, []actors.NodeName{"n1", "n2"}) || got[0].State != Event ||
		got[0].Origin != "n1" || got[0].RaisedBy != "n1" || !got[0].Time.Equal(at) {
		t.Fatalf("got %+v, want one event from n1 with reporters [n1 n2]", got)
	}
	for i := 2; i <= 4; i++ {
		a := mk("n1", fmt.Sprint("k", i))
		a.Started = at.Add(time.Duration(i) * time.Second)
		h.add(a)
	}
	var keys []string
	for _, a := range h.newest(0) {
		keys = append(keys, a.Key)
	}
	if !slices.Equal(keys, []string{"k4", "k3", "k2"}) {
		t.Errorf("history %v, want the 3 newest, newest first", keys)
	}
	again := mk("n3", "k1")
	again.Started = at.Add(time.Minute)
	h.add(again)
	if got := h.newest(0); len(got) != 3 || got[0].Key != "k1" || got[0].RaisedBy != "n3" {
		t.Errorf("a forgotten fact reported again: %+v", got)
	}
	// newest hands out copies.
	h.newest(1)[0].Reporters[0] = "x"
	if h.newest(1)[0].Reporters[0] != "n3" {
		t.Error("newest shares the history's reporters")
	}
}

// cond is a copy of a member_failed/n9 alert as one node holds it.
func cond(raisedBy actors.NodeName, started, ended int, resolvedBy actors.NodeName, reporters ...actors.NodeName) *Alert {
	a := &Alert{ID: fmt.Sprintf("%s/x/%d", raisedBy, started), Key: "member_failed/n9", Kind: MemberFailed, Subject: "n9",
		Severity: Critical, RaisedBy: raisedBy, Started: time.Unix(int64(started), 0), ResolvedBy: resolvedBy,
		Reporters: append([]actors.NodeName{raisedBy}, reporters...)}
	if ended > 0 {
		a.Ended = time.Unix(int64(ended), 0)
	}
	return a
}

func TestHistoryMergesAnEpisodeTheSameInAnyOrder(t *testing.T) {
	// n2 and n3 raise the same failure; n3 resolves its copy before it hears
	// of n2's; n2, which raised first, resolves later; then n9 fails
	// again, raised by n3.
	copies := []*Alert{
		cond("n2", 10, 0, ""),
		cond("n3", 11, 0, ""),
		cond("n3", 11, 20, "n3"),
		cond("n2", 10, 22, "n2", "n3"),
		cond("n3", 30, 0, ""),
	}
	var want []Alert
	for i, perm := range permutations(len(copies)) {
		h := newHistory(10)
		for _, k := range perm {
			c := *copies[k]
			c.Reporters = slices.Clone(c.Reporters)
			h.add(&c)
		}
		got := h.newest(0)
		if i == 0 {
			want = got
			if len(got) != 2 || got[0].State != Active || !got[0].Started.Equal(time.Unix(30, 0)) ||
				got[1].State != Resolved || got[1].RaisedBy != "n2" || !got[1].Started.Equal(time.Unix(10, 0)) ||
				!got[1].Ended.Equal(time.Unix(22, 0)) || got[1].ResolvedBy != "n2" {
				t.Fatalf("merged %+v; want the second failure active, then the first raised by n2 at 10 and ended by it at 22", got)
			}
			continue
		}
		for j := range got {
			got[j].Reporters, want[j].Reporters = nil, nil // their order is the order heard
			got[j].Received = time.Time{}
		}
		if !slices.EqualFunc(got, want, func(a, b Alert) bool {
			return a.ID == b.ID && a.State == b.State && a.Started.Equal(b.Started) && a.Ended.Equal(b.Ended) && a.ResolvedBy == b.ResolvedBy
		}) {
			t.Fatalf("order %v merged to %+v; order 0 to %+v", perm, got, want)
		}
	}
}

func TestHistoryEndsAtTheEarliestEndWithoutTheRaiser(t *testing.T) {
	h := newHistory(10)
	h.add(cond("n2", 10, 0, ""))
	h.add(cond("n2", 10, 25, "n4"))
	h.add(cond("n2", 10, 21, "n3"))
	if got := h.newest(0); len(got) != 1 || !got[0].Ended.Equal(time.Unix(21, 0)) || got[0].ResolvedBy != "n3" {
		t.Fatalf("got %+v; want the earliest end, n3's", got)
	}
	h.add(cond("n2", 10, 30, "n2"))
	if got := h.newest(0); len(got) != 1 || !got[0].Ended.Equal(time.Unix(30, 0)) || got[0].ResolvedBy != "n2" {
		t.Fatalf("got %+v; want the raiser's end", got)
	}
}

func TestHistoryForgetsActiveAlertsLast(t *testing.T) {
	h := newHistory(2)
	active := cond("n1", 1, 0, "")
	h.add(active)
	old := cond("n1", 5, 6, "n1")
	old.Key = "member_failed/n7"
	h.add(old)
	r := cond("n1", 7, 8, "n1")
	r.Key = "member_failed/n8"
	h.add(r)
	got := h.newest(0)
	if len(got) != 2 || got[0].ID != active.ID || got[1].Key != "member_failed/n8" {
		t.Fatalf("kept %+v; want the active alert and the newest resolved one", got)
	}
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

func TestAlertFromPBRefusesMalformed(t *testing.T) {
	good := (&Alert{ID: "a/1", Key: "k", RaisedBy: "a", Severity: Info, Started: time.Unix(1, 0)}).toPB()
	if a, err := alertFromPB(good, time.Unix(2, 0)); err != nil || a.RaisedBy != "a" || !slices.Equal(a.Reporters, []actors.NodeName{"a"}) {
		t.Fatalf("a good alert: %+v, %v", a, err)
	}
	for _, change := range []func(){
		func() { good.Id = "" },
		func() { good.Id, good.Severity = "a/1", 9 },
		func() { good.Severity, good.Origin = 1, "" },
		func() { good.Origin, good.EndedUnixNano = "a", 5 },                                      // an end without a resolver
		func() { good.ResolvedBy = "a" },                                                         // an event that ends
		func() { good.Kind, good.EndedUnixNano, good.TimeUnixNano = string(MemberFailed), 1, 9 }, // ends before it starts
	} {
		change()
		if _, err := alertFromPB(good, time.Now()); err == nil {
			t.Errorf("accepted %v", good)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	names := []string{"node-10", "node-2", "node-1", "b", "a", "node-02"}
	slices.SortFunc(names, naturalCompare)
	if want := []string{"a", "b", "node-1", "node-2", "node-02", "node-10"}; !slices.Equal(names, want) {
		t.Errorf("sorted %v, want %v", names, want)
	}
}
