package telemetry_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/telemetry"
)

// TestEventStreamOutlivesServerTimeouts: a server with short read and
// write timeouts (as the node's are, against slow clients) still streams
// events for longer than both: the stream lifts its own deadlines.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	c := newCluster(t, 1, testConfig(telemetry.NewLogBuffer(10)))
	srv := httptest.NewUnstartedServer(telemetry.Handler(c.Node(c.Names()[0]), telemetry.HandlerConfig{Push: 20 * time.Millisecond}))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/telemetry/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start, events := time.Now(), 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for time.Since(start) < 500*time.Millisecond && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: snapshot") {
			events++
		}
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("the stream ended after %v and %d events (%v); the server's timeouts are 100ms", took, events, sc.Err())
	}
}
