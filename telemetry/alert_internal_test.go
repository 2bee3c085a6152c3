package telemetry

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestHistoryKeepsOnePerFactAndForgetsTheOldest(t *testing.T) {
	h := newHistory(3)
	at := time.Unix(100, 0)
	mk := func(origin, key string) *Alert {
		return &Alert{ID: origin + "/" + key, Key: key, Origin: origin, Time: at, Severity: Warning, Reporters: []string{origin}}
	}
	if !h.add(mk("n1", "k1")) || h.add(mk("n2", "k1")) || h.add(mk("n2", "k1")) {
		t.Fatal("a second report of a fact counted as new")
	}
	if got := h.newest(0)[0].Reporters; !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("reporters %v, want [n1 n2]", got)
	}
	for i := 2; i <= 4; i++ {
		h.add(mk("n1", fmt.Sprint("k", i)))
	}
	var keys []string
	for _, a := range h.newest(0) {
		keys = append(keys, a.Key)
	}
	if !slices.Equal(keys, []string{"k4", "k3", "k2"}) {
		t.Errorf("history %v, want the 3 newest, newest first", keys)
	}
	if !h.add(mk("n3", "k1")) {
		t.Error("a forgotten fact reported again is not new")
	}
	if got := h.newest(2); len(got) != 2 || got[0].Key != "k1" {
		t.Errorf("newest(2) = %v", got)
	}
	// newest hands out copies.
	h.newest(1)[0].Reporters[0] = "x"
	if h.newest(1)[0].Reporters[0] != "n3" {
		t.Error("newest shares the history's reporters")
	}
}

func TestAlertFromPBRefusesMalformed(t *testing.T) {
	good := (&Alert{ID: "a/1", Key: "k", Origin: "a", Severity: Info, Time: time.Unix(1, 0)}).toPB()
	if a, err := alertFromPB(good, time.Unix(2, 0)); err != nil || a.Origin != "a" || !slices.Equal(a.Reporters, []string{"a"}) {
		t.Fatalf("a good alert: %+v, %v", a, err)
	}
	for _, change := range []func(){
		func() { good.Id = "" },
		func() { good.Id, good.Severity = "a/1", 9 },
		func() { good.Severity, good.Origin = 1, "" },
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
