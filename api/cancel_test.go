package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/api"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/cluster/clustertest"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/jobs/jobstest"
	"github.com/troupe-dev/troupe/membership"
)

// spinJob's one part runs until it is cancelled (or hits its limits).
const spinJob = "def split(i, n):\n    return [1]\ndef run(p):\n    while True:\n        pass\ndef merge(r):\n    return r\n"

// TestCancelThroughAnotherNodeAnswersTheContactsStatus: a DELETE at a node
// that is not the job's contact answers with the contact's status of the
// job after the cancellation, and again the same when repeated.
func TestCancelThroughAnotherNodeAnswersTheContactsStatus(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 3, cfg)
	other := httptest.NewServer(api.New(c.Node("node-2"), api.Config{}))
	defer other.Close()
	sub, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.Submit{Script: spinJob})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		a := send(t, other.Client(), "DELETE", other.URL+"/v1/jobs/"+sub.ID, "")
		if a.status != http.StatusOK || a.obj["id"] != sub.ID || a.obj["state"] != "cancelled" || a.obj["contact"] != "node-1" {
			t.Fatalf("DELETE #%d through node-2: %d %s; want 200 with the job cancelled at node-1", i+1, a.status, a.raw)
		}
		if msg, _ := a.obj["error"].(string); !strings.Contains(msg, "node-2") {
			t.Errorf("DELETE #%d: the job's error %q does not say it was cancelled through node-2", i+1, msg)
		}
	}
	if st, err := actors.Call(context.Background(), c.Node("node-1"), jobs.Name, jobs.StatusRequest{ID: sub.ID}); err != nil || st.State != jobs.Cancelled {
		t.Errorf("the job at its contact: %+v, %v", st, err)
	}
}

// TestCancelOfAJobItsLiveContactNeverHad: a job-shaped id naming a live
// member other than the node asked, for a job that member never had (a
// made-up generation, or its own generation with a number it never gave),
// is 404 not_found, as the contact answers.
func TestCancelOfAJobItsLiveContactNeverHad(t *testing.T) {
	cfg := jobs.DefaultConfig()
	cfg.Slots = 1
	c := jobstest.NewCluster(t, 2, cfg)
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{}))
	defer srv.Close()
	sub, err := actors.Call(context.Background(), c.Node("node-2"), jobs.Name, jobs.Submit{Script: sumJob, Input: []byte(`[1, 2]`), Parts: 1})
	if err != nil {
		t.Fatal(err)
	}
	unissued := sub.ID[:strings.LastIndexByte(sub.ID, '.')] + ".99"
	for _, id := range []string{"node-2.abc.7", unissued} {
		a := send(t, srv.Client(), "DELETE", srv.URL+"/v1/jobs/"+id, "")
		if a.status != http.StatusNotFound || !a.isError() || a.obj["code"] != "not_found" || !strings.Contains(a.raw, "node-2") {
			t.Errorf("DELETE /v1/jobs/%s: %d %s; want 404 {error, code: not_found} from the contact node-2", id, a.status, a.raw)
		}
	}
}

// TestCancelUnansweredByTheContact: a contact that is a live member but
// does not answer (here it runs no jobs protocol) makes the DELETE end at
// the API's timeout with 504 timeout, saying the cancellation may or may
// not have reached it.
func TestCancelUnansweredByTheContact(t *testing.T) {
	c := clustertest.NewCluster(t, 2, cluster.Membership(jobstest.Swim))
	ef, err := election.New(election.Config{Bully: jobstest.Bully})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ef); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, "node-1 sees node-2 alive", func() bool {
		v, err := actors.Call(context.Background(), c.Node("node-1"), membership.Name, membership.ViewRequest{})
		return err == nil && len(v.Live()) == 2
	})
	f, err := jobs.New(jobs.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node("node-1").Start(f); err != nil {
		t.Fatal(err)
	}
	// 1 s: the contact is asked to answer within 750 ms, which leaves a
	// busy node a quarter of a second to tell its silence.
	srv := httptest.NewServer(api.New(c.Node("node-1"), api.Config{Timeout: time.Second}))
	defer srv.Close()
	a := send(t, srv.Client(), "DELETE", srv.URL+"/v1/jobs/node-2.abc.7", "")
	if msg, _ := a.obj["error"].(string); a.status != http.StatusGatewayTimeout || !a.isError() || a.obj["code"] != "timeout" || !strings.Contains(msg, "may or may not") {
		t.Errorf("DELETE at a silent contact: %d %s; want 504 {error, code: timeout} saying it may or may not have reached it", a.status, a.raw)
	}
}
