package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/telemetry"
)

// nodeLogger is the logger of `node run`: zerolog JSON lines (format
// "json") or a human console format ("console") on w, at level; "auto" is
// console when w is a terminal and JSON otherwise. Every line also goes,
// as JSON, into the returned buffer, from which any node fetches this
// node's recent logs.
func nodeLogger(w io.Writer, format string, level zerolog.Level) (zerolog.Logger, *telemetry.LogBuffer, error) {
	logs := telemetry.NewLogBuffer(2000)
	if format == "auto" || format == "" {
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
	default:
		return zerolog.Logger{}, nil, fmt.Errorf("--log-format %q: valid: auto, json, console", format)
	}
	return zerolog.New(zerolog.MultiLevelWriter(w, logs)).Level(level).With().Timestamp().Logger(), logs, nil
}

// nodeMetrics is the registry /metrics serves; with protoactor set, it
// also receives protoactor-go's own metrics, which acfg then turns on.
// Register the node's collector once the node exists.
func nodeMetrics(acfg *actors.Config, protoactor bool) (*prometheus.Registry, error) {
	reg := telemetry.NewRegistry(nil)
	if protoactor {
		mp, err := telemetry.ProtoactorMeterProvider(reg)
		if err != nil {
			return nil, err
		}
		acfg.MetricProvider = mp
	}
	return reg, nil
}

// streamsEnd makes srv's requests end when it shuts down, so that the
// dashboard's event streams do not hold Shutdown up.
func streamsEnd(srv *http.Server) {
	base, cancel := context.WithCancel(context.Background())
	srv.BaseContext = func(net.Listener) context.Context { return base }
	srv.RegisterOnShutdown(cancel)
}
