package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/jobs"
)

const quickJob = "def split(input, n):\n    return list(range(1, n + 1))\ndef run(part):\n    return part * 10\ndef merge(rs):\n    if len(rs) > 2:\n        fail(\"too many\")\n    return rs[0] + rs[1]\n"

// Any node answers a job's status: one that is not the job's contact asks
// the contact.
func TestStatusFromAnyNode(t *testing.T) {
	c := newCluster(t, 3, jobsCfg(t, nil))
	s, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Name: "quick.star", Script: quickJob, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	at1 := await(t, c.Node("node-1"), s.ID, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at2, err := jobs.JobStatus(ctx, c.Node("node-2"), s.ID)
	if err != nil {
		t.Fatalf("status through node-2: %v", err)
	}
	a, _ := json.Marshal(at1)
	b, _ := json.Marshal(at2)
	if string(a) != string(b) || at2.Name != "quick.star" || string(at2.Result) != "30" {
		t.Errorf("status through node-2:\n %s\nat the contact:\n %s", b, a)
	}

	// A failed job's traceback comes through another node too.
	bad, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Name: "bad.star", Script: quickJob, Parts: 3})
	if err != nil {
		t.Fatal(err)
	}
	await(t, c.Node("node-1"), bad.ID, 20*time.Second)
	st, err := jobs.JobStatus(ctx, c.Node("node-3"), bad.ID)
	if err != nil || st.State != jobs.Failed || st.Traceback == "" || st.Error == "" {
		t.Errorf("failed job through node-3: %+v, %v; want failed with an error and a traceback", st, err)
	}

	for _, tc := range []struct {
		id string
		is error
	}{
		{"node-1.zz.999", jobs.ErrNotFound},  // its contact has no such job
		{"node-9.zz.1", jobs.ErrContactLost}, // its contact is no member
		{"nonsense", jobs.ErrNotFound},
	} {
		if _, err := jobs.JobStatus(ctx, c.Node("node-2"), tc.id); !errors.Is(err, tc.is) {
			t.Errorf("status of %s through node-2: %v, want %v", tc.id, err, tc.is)
		}
	}
}

// Any node lists the cluster's jobs, newest first; a member that does not
// answer in time is named missing, and the others' jobs are listed.
func TestClusterListFromAnyNode(t *testing.T) {
	c := newCluster(t, 3, jobsCfg(t, nil))
	var ids []string
	for _, n := range []actors.NodeName{"node-1", "node-2", "node-3"} {
		s, err := actors.Call(context.Background(), c.Node(n), jobs.Name, jobs.Submit{Script: quickJob, Parts: 2})
		if err != nil {
			t.Fatal(err)
		}
		await(t, c.Node(n), s.ID, 20*time.Second)
		ids = append(ids, s.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := jobs.ListJobs(ctx, c.Node("node-2"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range l.Jobs {
		got = append(got, s.ID)
	}
	slices.Reverse(ids) // newest first
	if !slices.Equal(got, ids) || l.Partial() {
		t.Errorf("list through node-2: %v, missing %v, cut %v; want %v, whole", got, l.Missing, l.Truncated, ids)
	}

	// node-3's answers do not reach node-2.
	c.Hub.Block("node-3", "node-2")
	defer c.Hub.Heal()
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	l, err = jobs.ListJobs(short, c.Node("node-2"))
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, s := range l.Jobs {
		got = append(got, s.ID)
	}
	if !slices.Equal(l.Missing, []actors.NodeName{"node-3"}) || !slices.Equal(got, ids[1:]) || !l.Partial() {
		t.Errorf("list through node-2 with node-3 silent: %v, missing %v; want %v, node-3 missing", got, l.Missing, ids[1:])
	}
}
