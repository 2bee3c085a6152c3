package examplejobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"

	examplejobs "github.com/troupe-dev/troupe/examples/jobs"
	"github.com/troupe-dev/troupe/jobs"
)

// The sample job on one node: one query of the data service, a score per
// item, the best three of the merge printed.
func Example_scores() {
	ds := httptest.NewServer(&examplejobs.DataService{Items: examplejobs.Items(200, 1)})
	defer ds.Close()
	u, _ := url.Parse(ds.URL)
	rt, _ := jobs.Starlark(jobs.StarlarkConfig{HTTPAllow: []string{u.Host}})
	input, _ := json.Marshal(map[string]any{"service": ds.URL, "resamples": 5})
	out, err := jobs.RunLocal(context.Background(), rt, []byte(examplejobs.Scores), input, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	var res struct {
		Scored int
		Mean   float64
		Best   []struct {
			Name  string
			Score float64
		}
	}
	_ = json.Unmarshal(out, &res)
	fmt.Println("scored", res.Scored, "mean", res.Mean)
	for _, b := range res.Best[:3] {
		fmt.Println(b.Name, b.Score)
	}
	// Output:
	// scored 200 mean 3.339
	// item-0156 5.335
	// item-0127 5.323
	// item-0136 5.299
}

// The CPU-bound job on one node.
func Example_cpu() {
	rt, _ := jobs.Starlark(jobs.StarlarkConfig{})
	out, err := jobs.RunLocal(context.Background(), rt, []byte(examplejobs.CPU), []byte(`{"limit": 10000}`), 4)
	fmt.Println(string(out), err)
	// Output: {"parts":4,"primes":1229} <nil>
}
