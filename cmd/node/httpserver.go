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
}

// defaultServerLimits are the limits of every server the node runs.
func defaultServerLimits() serverLimits {
	return serverLimits{
		ReadHeader: 10 * time.Second,
		Read:       30 * time.Second,  // a body of a few MiB on a slow link
		Write:      60 * time.Second,  // handlers wait at most 10s for the protocols
		Idle:       120 * time.Second, // a dashboard's or client's kept-alive connection
		MaxHeader:  64 << 10,          // a token, a cookie and a long path fit
	}
}

// newServer is an HTTP server of h within lim.
func newServer(h http.Handler, lim serverLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    lim.MaxHeader,
	}
}
