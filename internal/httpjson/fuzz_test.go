package httpjson_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/internal/httpjson"
)

// FuzzQuery: any query string is accepted or refused as a 400, never a
// panic; what is accepted names only valid parameters, each once, and
// agrees with url.ParseQuery.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "prev=a", "prev=%zz", "prev=a;b=c", "prev=a&prev=b", "x=1", "%zz", "prev", "prev=a+b&limit=3", "&&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.RawQuery = raw
		q, err := httpjson.Query(r, "prev", "limit")
		if err != nil {
			if p, ok := err.(*httpjson.Problem); !ok || p.Status != 400 || p.Code != "bad_request" {
				t.Fatalf("%q: %v, want a 400 Problem", raw, err)
			}
			return
		}
		std, serr := url.ParseQuery(raw)
		if serr != nil {
			t.Fatalf("%q accepted, but url.ParseQuery refuses it: %v", raw, serr)
		}
		for k, vs := range q {
			if (k != "prev" && k != "limit") || len(vs) != 1 || len(std[k]) != 1 || std[k][0] != vs[0] {
				t.Fatalf("%q: %v against %v", raw, q, std)
			}
		}
	})
}

// FuzzDecode: any body is decoded into one object or refused as a 400 or
// 413, never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"n": 1}`, `{"n": 1} x`, `{"n": 1}{}`, `{"m": 1}`, `[`, ``, `null`, `{"n": 1e400}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var v struct {
			N int `json:"n"`
		}
		err := httpjson.Decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), 256, &v, `{"n"}`)
		if err == nil {
			return
		}
		if p, ok := err.(*httpjson.Problem); !ok || (p.Status != 400 && p.Status != 413) {
			t.Fatalf("%q: %v, want a 400 or 413 Problem", body, err)
		}
	})
}
