package httpjson_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/internal/httpjson"
)

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) httpjson.Error {
	t.Helper()
	var e httpjson.Error
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
		t.Errorf("not the error shape: %q", rec.Body)
	}
	return e
}

func TestMethods(t *testing.T) {
	m := httpjson.Methods{
		http.MethodGet:  func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, 200, "got") },
		http.MethodPost: func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, 201, "made") },
	}
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 201, "PUT": 405, "OPTIONS": 405} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(method, "/x", nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", method, rec.Code, want)
		}
		if want == 405 {
			if e := errorOf(t, rec); e.Code != "method_not_allowed" || !strings.Contains(e.Error, method) {
				t.Errorf("%s: %+v", method, e)
			}
			if a := rec.Header().Get("Allow"); a != "GET, HEAD, POST" {
				t.Errorf("Allow %q", a)
			}
		}
	}
	rec := httptest.NewRecorder()
	httpjson.NotFound("/x").ServeHTTP(rec, httptest.NewRequest("GET", "/y", nil))
	if e := errorOf(t, rec); rec.Code != 404 || e.Code != "not_found" || !strings.Contains(e.Error, "/y") {
		t.Errorf("not found: %d %+v", rec.Code, e)
	}
}

func TestDecode(t *testing.T) {
	type body struct {
		N int `json:"n"`
	}
	for _, c := range []struct {
		in     string
		status int
		part   string
	}{
		{`{"n": 1}`, 0, ""},
		{" {\"n\": 1}\n\t ", 0, ""},
		{`{"n": 1} x`, 400, "nothing after it"},
		{`{"n": 1}{"n": 2}`, 400, "nothing after it"},
		{`{"n": 1, "m": 2}`, 400, `unknown field "m"`},
		{`{"n": `, 400, "a JSON object {\"n\"}"},
		{`{"n": 1}` + strings.Repeat(" ", 100), 413, "over 64 bytes"},
		{`{"n": 11111111111111111111111111111111111111111111111111111111111111111}`, 413, "over 64 bytes"},
	} {
		rec := httptest.NewRecorder()
		var b body
		err := httpjson.Decode(rec, httptest.NewRequest("POST", "/", strings.NewReader(c.in)), 64, &b, `{"n"}`)
		if c.status == 0 {
			if err != nil || b.N != 1 {
				t.Errorf("%q: %v %+v", c.in, err, b)
			}
			continue
		}
		p, ok := err.(*httpjson.Problem)
		if !ok || p.Status != c.status || !strings.Contains(p.Msg, c.part) {
			t.Errorf("%q: %v, want %d mentioning %q", c.in, err, c.status, c.part)
		}
	}
}

func TestQuery(t *testing.T) {
	for _, c := range []struct{ query, want string }{
		{"", ""},
		{"a=1&b=x%20y", ""},
		{"a=1&", ""},
		{"a=%zz", `query parameter "a": its value is not URL-encoded`},
		{"%zz=1", `query parameter "%zz" is not URL-encoded`},
		{"a=1;b=2", `query parameter "a" holds a ';'`},
		{"a=1&a=2", `query parameter "a" is given twice`},
		{"c=1", `unknown parameter "c"; valid: a, b`},
	} {
		q, err := httpjson.Query(httptest.NewRequest("GET", "/?"+c.query, nil), "a", "b")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.query, err)
		case c.want == "" && c.query == "a=1&b=x%20y" && (q.Get("a") != "1" || q.Get("b") != "x y"):
			t.Errorf("%q: %v", c.query, q)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || err.(*httpjson.Problem).Status != 400):
			t.Errorf("%q: %v, want %q", c.query, err, c.want)
		}
	}
	if _, err := httpjson.Query(httptest.NewRequest("GET", "/?x=1", nil)); err == nil || !strings.Contains(err.Error(), "valid: none") {
		t.Errorf("a parameter where none is taken: %v", err)
	}
}
