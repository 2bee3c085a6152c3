package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/jobs"
)

func starlarkRT(t *testing.T, cfg jobs.StarlarkConfig) jobs.Runtime {
	t.Helper()
	rt, err := jobs.Starlark(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func readScript(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStarlarkRunsAWholeJob(t *testing.T) {
	rt := starlarkRT(t, jobs.StarlarkConfig{})
	out, err := jobs.RunLocal(context.Background(), rt, readScript(t, "squares.star"), []byte(`{"numbers": [1,2,3,4,5], "spin": 3}`), 2)
	if err != nil {
		t.Fatal(err)
	}
	// 1+4+9+16+25 = 55; spun = 3·sq each (all below the modulus).
	if got, want := string(out), `{"count":5,"spun":165,"sum":55}`; got != want {
		t.Errorf("output %s, want %s", got, want)
	}
}

// failing loads a script that defines split, run and merge around body
// (run's body) and runs one part; it returns the error.
func failing(t *testing.T, rt jobs.Runtime, run string) error {
	t.Helper()
	src := "def split(input, n):\n    return [1]\n\ndef run(part):\n" + run + "\ndef merge(rs):\n    return rs\n"
	prog, err := rt.Load(context.Background(), []byte(src))
	if err != nil {
		return err
	}
	_, err = prog.Run(context.Background(), []byte("1"))
	return err
}

func TestStarlarkErrorsSayWhatAndWhere(t *testing.T) {
	small := jobs.Limits{MaxSteps: 100_000, Timeout: 10 * time.Second, MaxResultBytes: 1000}
	rt := starlarkRT(t, jobs.StarlarkConfig{Limits: small})
	slow := starlarkRT(t, jobs.StarlarkConfig{Limits: jobs.Limits{MaxSteps: 1 << 62, Timeout: 100 * time.Millisecond, MaxResultBytes: 1000}})
	for _, tc := range []struct {
		name string
		rt   jobs.Runtime
		run  string
		is   error
		says []string
	}{
		{"syntax error", rt, "    return (1 +\n", jobs.ErrScript, []string{"job.star:7:", "want primary expression"}},
		{"runtime error", rt, "    x = 1\n    return x + \"a\"\n", jobs.ErrScript, []string{"job.star:6:", "unknown binary op"}},
		{"endless loop at the step limit", rt, "    while True:\n        pass\n", jobs.ErrStepLimit, []string{"100000 steps", "job.star:"}},
		{"endless loop at the time limit", slow, "    while True:\n        pass\n", jobs.ErrTimeLimit, []string{"100ms"}},
		{"result too large", rt, "    return \"x\" * 2000\n", jobs.ErrResultTooLarge, []string{"1000"}},
		{"result not JSON", rt, "    return lambda: 1\n", jobs.ErrScript, []string{"JSON"}},
		{"no file access", rt, "    return open(\"/etc/passwd\")\n", jobs.ErrScript, []string{"undefined: open"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := failing(t, tc.rt, tc.run)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestStarlarkScriptMustDefineTheThreeFunctions(t *testing.T) {
	_, err := starlarkRT(t, jobs.StarlarkConfig{}).Load(context.Background(), []byte("def run(p):\n    return p\n"))
	if !errors.Is(err, jobs.ErrScript) || !strings.Contains(err.Error(), "split") {
		t.Fatalf("error %v, want ErrScript naming split", err)
	}
}

func TestStarlarkCancelStopsAPart(t *testing.T) {
	rt := starlarkRT(t, jobs.StarlarkConfig{Limits: jobs.Limits{MaxSteps: 1 << 62, Timeout: time.Minute, MaxResultBytes: 1000}})
	prog, err := rt.Load(context.Background(), []byte("def split(i, n):\n    return []\ndef run(p):\n    while True:\n        pass\ndef merge(r):\n    return r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := prog.Run(ctx, []byte("null")); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled part still runs after 5s")
	}
}

func TestStarlarkHTTPGetOnlyToAllowedHosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	src := "def split(i, n):\n    return [i]\ndef run(p):\n    return json.decode(http_get(p))\ndef merge(r):\n    return r[0]\n"

	allowed := starlarkRT(t, jobs.StarlarkConfig{HTTPAllow: []string{u.Host}})
	out, err := jobs.RunLocal(context.Background(), allowed, []byte(src), []byte(`"`+srv.URL+`/items"`), 1)
	if err != nil || string(out) != `{"path":"/items"}` {
		t.Fatalf("allowed host: %s, %v", out, err)
	}
	other := starlarkRT(t, jobs.StarlarkConfig{HTTPAllow: []string{"data.example:80"}})
	_, err = jobs.RunLocal(context.Background(), other, []byte(src), []byte(`"`+srv.URL+`/items"`), 1)
	if !errors.Is(err, jobs.ErrScript) || !strings.Contains(err.Error(), "not in the node's allow list") {
		t.Fatalf("other host: %v, want a refusal", err)
	}
	none := starlarkRT(t, jobs.StarlarkConfig{})
	_, err = jobs.RunLocal(context.Background(), none, []byte(src), []byte(`"`+srv.URL+`"`), 1)
	if err == nil || !strings.Contains(err.Error(), "undefined: http_get") {
		t.Fatalf("no allow list: %v, want http_get undefined", err)
	}
}
