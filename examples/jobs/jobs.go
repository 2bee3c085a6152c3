package examplejobs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Scores is the sample job: one query of the data service, a quality score
// per item, the best items merged. Its input is {"service": URL}; the node
// must allow the service's host for http_get (jobs.StarlarkConfig.HTTPAllow).
//
//go:embed scores.star
var Scores string

// CPU is the CPU-bound job: primes below input["limit"], by trial division.
//
//go:embed cpu.star
var CPU string

// Item is one record of the data service.
type Item struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Ratings     []int  `json:"ratings"`
	Returns     int    `json:"returns"`
}

// Items makes n items from a seed: the same seed gives the same catalogue.
func Items(n int, seed uint64) []Item {
	r := rand.New(rand.NewPCG(seed, 7))
	words := strings.Fields("sturdy light compact quiet fast bright warm soft durable simple elegant robust handy smart clean")
	items := make([]Item, n)
	for i := range items {
		it := Item{ID: i + 1, Name: fmt.Sprintf("item-%04d", i+1)}
		desc := make([]string, 3+r.IntN(50))
		for j := range desc {
			desc[j] = words[r.IntN(len(words))]
		}
		it.Description = strings.Join(desc, " ")
		quality := 1 + r.IntN(5)
		it.Ratings = make([]int, r.IntN(60))
		for j := range it.Ratings {
			it.Ratings[j] = min(5, max(1, quality+r.IntN(3)-1))
		}
		it.Returns = r.IntN(10)
		items[i] = it
	}
	return items
}

// DataService is a small stand-in for a real data service: GET /items
// returns the catalogue as JSON; GET /items/{id} one item. Delay, when set,
// is added to every answer, to model a remote service's latency.
type DataService struct {
	Items []Item
	Delay time.Duration
}

func (d *DataService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.Delay > 0 {
		select {
		case <-time.After(d.Delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/items":
		_ = json.NewEncoder(w).Encode(d.Items)
	case strings.HasPrefix(r.URL.Path, "/items/"):
		var id int
		if _, err := fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/items/"), "%d", &id); err != nil || id < 1 || id > len(d.Items) {
			http.Error(w, `{"error": "no such item"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(d.Items[id-1])
	default:
		http.Error(w, `{"error": "no such endpoint"}`, http.StatusNotFound)
	}
}
