package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
)

// failJob fails in merge, with a traceback.
const failJob = "def split(i, n):\n    return [1, 2]\ndef run(p):\n    return p\ndef merge(r):\n    return r[7]\n"

// TestJobStatusAndListThroughAnyNode: GET /v1/jobs/{id} at a node that is
// not the job's contact answers the contact's status, traceback included;
// GET /v1/jobs at any node lists every member's jobs, and marks the
// members that did not answer.
func TestJobStatusAndListThroughAnyNode(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	other := httptest.NewServer(api.New(c.Node("node-2"), api.Config{Timeout: 2 * time.Second}))
	defer other.Close()
	var ids []string
	for _, n := range []actors.NodeName{"node-1", "node-3"} {
		sub, err := actors.Call(context.Background(), c.Node(n), jobs.Name, jobs.Submit{Script: failJob, Name: "fail.star"})
		if err != nil {
			t.Fatal(err)
		}
		jobstest.Await(t, c.Node(n), sub.ID, 20*time.Second)
		ids = append(ids, sub.ID)
	}

	a := send(t, other.Client(), "GET", other.URL+"/v1/jobs/"+ids[0], "")
	msg, _ := a.obj["error"].(string)
	tb, _ := a.obj["traceback"].(string)
	if a.status != http.StatusOK || a.obj["id"] != ids[0] || a.obj["state"] != "failed" || a.obj["name"] != "fail.star" ||
		!strings.HasPrefix(msg, "merge: ") || !strings.Contains(msg, "fail.star:6:13: in merge") || strings.Contains(msg, "\n") ||
		!strings.Contains(tb, "Traceback") {
		t.Errorf("GET through node-2: %d %s; want 200, node-1's failed job with a one-line error and a traceback", a.status, a.raw)
	}
	if a := send(t, other.Client(), "GET", other.URL+"/v1/jobs/node-1.zz.77", ""); a.status != http.StatusNotFound || !a.isError() {
		t.Errorf("GET of a job node-1 never had: %d %s; want 404", a.status, a.raw)
	}
	if a := send(t, other.Client(), "GET", other.URL+"/v1/jobs/node-9.zz.1", ""); a.status != http.StatusGone || !a.isError() {
		t.Errorf("GET of a job of no member: %d %s; want 410", a.status, a.raw)
	}

	cl := api.NewClient(other.URL)
	l, err := cl.ListJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range l.Jobs {
		got = append(got, s.ID)
		if s.Traceback != "" || strings.Contains(s.Error, "\n") {
			t.Errorf("listed %s with error %q, traceback %q; want one line, no traceback", s.ID, s.Error, s.Traceback)
		}
	}
	if !slices.Equal(got, []string{ids[1], ids[0]}) || l.Partial() {
		t.Errorf("GET /v1/jobs through node-2: %v, missing %v; want %v, newest first, whole", got, l.Missing, []string{ids[1], ids[0]})
	}
	if a := send(t, other.Client(), "GET", other.URL+"/v1/jobs?scope=node", ""); a.status != http.StatusOK || a.raw != "[]\n" && a.raw != "[]" {
		t.Errorf("GET /v1/jobs?scope=node at node-2: %d %q; want 200 []", a.status, a.raw)
	}
	if a := send(t, other.Client(), "GET", other.URL+"/v1/jobs?scope=world", ""); a.status != http.StatusBadRequest || !strings.Contains(a.raw, "cluster") {
		t.Errorf("GET /v1/jobs?scope=world: %d %s; want 400 naming the valid scopes", a.status, a.raw)
	}

	// node-3's answers do not reach node-2: the list says so.
	c.Hub.Block("node-3", "node-2")
	defer c.Hub.Heal()
	a = send(t, other.Client(), "GET", other.URL+"/v1/jobs", "")
	if a.status != http.StatusOK || a.header.Get(api.MissingHeader) != "node-3" || !strings.Contains(a.raw, ids[0]) || strings.Contains(a.raw, ids[1]) {
		t.Errorf("GET /v1/jobs with node-3 silent: %d %s=%q %s; want node-1's job and node-3 missing", a.status, api.MissingHeader, a.header.Get(api.MissingHeader), a.raw)
	}
}

// GET /v1/jobs/{id}?wait= is a long poll: answered when the job ends
// (here it has, through a node that is not its contact: at once), with
// the job's progress; a wait that is no duration, not positive or over a
// minute is refused, naming what is valid.
func TestJobStatusWait(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 2, cfg)
	other := httptest.NewServer(api.New(c.Node("node-2"), api.Config{Timeout: 2 * time.Second}))
	defer other.Close()
	sub, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Script: "def split(i, n):\n    return [1, 2]\ndef run(p):\n    return p\ndef merge(r):\n    return len(r)\n"})
	if err != nil {
		t.Fatal(err)
	}
	a := send(t, other.Client(), "GET", other.URL+"/v1/jobs/"+sub.ID+"?wait=50s", "")
	if a.status != http.StatusOK || a.obj["state"] != "succeeded" || a.obj["progress"] != 1.0 {
		t.Errorf("GET ?wait=50s through node-2: %d %s; want 200, the job succeeded, progress 1", a.status, a.raw)
	}
	for _, bad := range []string{"wait=soon", "wait=0s", "wait=-1s", "wait=2m", "wait=", "until=1s"} {
		a := send(t, other.Client(), "GET", other.URL+"/v1/jobs/"+sub.ID+"?"+bad, "")
		if a.status != http.StatusBadRequest || !a.isError() || !strings.Contains(a.raw, "wait") {
			t.Errorf("GET ?%s: %d %s; want 400 naming wait", bad, a.status, a.raw)
		}
	}
}
