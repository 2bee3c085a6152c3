package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/security"
)

// h2cServer runs newServer(h, lim) on a loopback port and returns its base
// URL and the number of connections it accepted so far.
func h2cServer(t *testing.T, lim serverLimits, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h, lim)
	var conns atomic.Int64
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String(), &conns
}

func h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func echoProto(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, r.Proto)
}

// The node's HTTP server speaks HTTP/1.1 to curl and HTTP/2 in clear text
// to a client that starts with HTTP/2's preface, with many requests in
// flight on one connection.
func TestServerSpeaksHTTP1AndH2C(t *testing.T) {
	base, conns := h2cServer(t, defaultServerLimits(), http.HandlerFunc(echoProto))
	resp, err := http.Get(base + "/v1/kv/k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "HTTP/1.1" {
		t.Fatalf("a plain client was served over %q; want HTTP/1.1", b)
	}
	http.DefaultClient.CloseIdleConnections()

	before := conns.Load()
	hc := h2cClient(t)
	// One request first: Go's transport dials a connection for each
	// request that starts before it has one.
	if resp, err := hc.Get(base + "/v1/kv/k"); err != nil {
		t.Fatal(err)
	} else {
		_ = resp.Body.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Post(base+"/v1/kv/k", "application/octet-stream", strings.NewReader("value"))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 2 || string(b) != "HTTP/2.0" {
				errs <- errors.New("served over " + string(b) + ", answered over " + resp.Proto)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := conns.Load() - before; n != 1 {
		t.Fatalf("64 concurrent HTTP/2 requests took %d connections; want 1", n)
	}
}

// expectClosed reads from c until the server closes it (or the deadline
// passes, which fails the test), and returns what it read.
func expectClosed(t *testing.T, c net.Conn, within time.Duration) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v (read %q)", within, b)
	}
	return b
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Garbage, slow and oversized HTTP/2 input costs the sender its
// connection (or its request), never the server: it still serves.
func TestServerRefusesBadH2C(t *testing.T) {
	lim := defaultServerLimits()
	lim.ReadHeader, lim.Idle = 300*time.Millisecond, 300*time.Millisecond
	lim.MaxHeader = 4 << 10
	base, _ := h2cServer(t, lim, http.HandlerFunc(echoProto))
	addr := strings.TrimPrefix(base, "http://")
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("garbage after the preface", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, h2Preface+strings.Repeat("\xff", 4096)); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 5*time.Second)
	})
	t.Run("a frame length past the limit", func(t *testing.T) {
		c := dial(t)
		// An empty SETTINGS, then a DATA frame header claiming 16 MiB - 1.
		frames := "\x00\x00\x00\x04\x00\x00\x00\x00\x00" + "\xff\xff\xff\x00\x00\x00\x00\x00\x01"
		if _, err := io.WriteString(c, h2Preface+frames); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 5*time.Second)
	})
	t.Run("half a preface, then silence", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, h2Preface[:10]); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 5*time.Second)
	})
	t.Run("a preface, then silence", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, h2Preface); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, 20*time.Second) // the idle limit, or the preface's own 10 s
	})
	t.Run("headers past MaxHeader", func(t *testing.T) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/v1/kv/k", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		resp, err := h2cClient(t).Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("a 64 KiB header over HTTP/2 was answered %s; want 431 or a refusal", resp.Status)
			}
		}
	})
	t.Run("still serving", func(t *testing.T) {
		resp, err := h2cClient(t).Get(base + "/v1/kv/k")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s", resp.Proto)
		}
		c := dial(t)
		if _, err := io.WriteString(c, "GET /v1/kv/k HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("HTTP/1.1 after the attacks: %q, %v", line, err)
		}
	})
}

// Over TLS the server and the CLI's client (httpClient, --ca) agree on
// HTTP/2 (ALPN); a client that offers only HTTP/1.1 still gets it.
func TestServerSpeaksHTTP2OverTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := security.WriteDevCerts(dir, []string{"n1"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(http.HandlerFunc(echoProto), defaultServerLimits())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key"))
	}()
	defer func() { _ = srv.Close(); <-done }()
	base := "https://" + ln.Addr().String()
	hc, err := httpClient(filepath.Join(dir, "ca.crt"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(base + "/v1/kv/k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "HTTP/2.0" {
		t.Fatalf("the CLI's client over TLS: answered over %s, served over %q; want HTTP/2", resp.Proto, b)
	}
	tr := &http.Transport{TLSClientConfig: hc.Transport.(*http.Transport).TLSClientConfig.Clone(), Protocols: new(http.Protocols)}
	tr.TLSClientConfig.NextProtos = nil // the first transport added h2
	tr.Protocols.SetHTTP1(true)
	h1 := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	resp, err = h1.Get(base + "/v1/kv/k")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Fatalf("an HTTP/1.1-only client over TLS was answered over %s", resp.Proto)
	}
}
