package main

import (
	"net/http"
	"time"
)

// serverLimits bound what one client may hold of an HTTP server the node
// runs: a client that sends its headers or body slowly, or idles on a
// kept-alive connection, is cut off; an answer that cannot be written in
// time is abandoned. A stream (the dashboard's events) lifts the read and
// write deadlines of its own request with http.ResponseController.
type serverLimits struct {
	ReadHeader time.Duration // the request line and headers
	Read       time.Duration // the whole request, body included
	Write      time.Duration // from the end of the headers to the end of the answer
	Idle       time.Duration // a kept-alive connection between requests
	MaxHeader  int           // bytes of request line and headers
	// Streams: HTTP/2 requests one connection may have open at once;
	// more wait for one to end (the client's transport queues them or
	// opens another connection).
	Streams int
}

// defaultServerLimits are the limits of every server the node runs.
func defaultServerLimits() serverLimits {
	return serverLimits{
		ReadHeader: 10 * time.Second,
		Read:       30 * time.Second,  // a body of a few MiB on a slow link
		Write:      60 * time.Second,  // handlers wait at most 10s for the protocols
		Idle:       120 * time.Second, // a dashboard's or client's kept-alive connection
		MaxHeader:  64 << 10,          // a token, a cookie and a long path fit
		Streams:    256,               // a load generator's 64 clients fit on one connection
	}
}

// newServer is an HTTP server of h within lim. It speaks HTTP/1.1, and
// HTTP/2: over TLS when it serves TLS (negotiated, ALPN), and in clear
// text (h2c, "prior knowledge": the client starts with HTTP/2's preface)
// when it does not. One HTTP/2 connection carries many concurrent
// requests, so a client with many requests in flight — a load generator,
// a proxy — costs the node a few connections and far fewer reads, writes
// and flushes than one HTTP/1.1 connection per request in flight. curl and
// other HTTP/1.1 clients are served as before. The limits apply per
// request (ReadTimeout, WriteTimeout) and per connection (IdleTimeout,
// MaxHeaderBytes: the largest header list) on both.
func newServer(h http.Handler, lim serverLimits) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    lim.MaxHeader,
		Protocols:         new(http.Protocols),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: lim.Streams},
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}
