package telemetry

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
)

// Name is the name the telemetry protocol runs under on every node.
const Name actors.ProtocolName = "telemetry"

// SnapshotRequest asks a node's telemetry protocol for the cluster as the
// node sees it; the reply is a [Snapshot].
type SnapshotRequest struct {
	actors.Returns[Snapshot]
	// Alerts is how many alerts to include (active ones first, then the
	// newest); 0 means 50.
	Alerts int
}

// AlertsRequest asks for the node's whole alert history, active alerts
// first, then by start, newest first; the reply is a []Alert.
type AlertsRequest struct{ actors.Returns[[]Alert] }

// MaxLogLines caps LogsQuery.Limit.
const MaxLogLines = 10000

// LogsQuery asks the telemetry protocol for the recent logs of a node (this
// one or any member in its view; a failed one is asked too, and times out
// if it is really gone). It is a request (actors.Call, actors.Request) to
// [Name]. Errors: ErrUnknownNode,
// ErrNoLogs, ErrTimeout, ErrBadRequest.
type LogsQuery struct {
	actors.Returns[Logs]
	Node     actors.NodeName // the node whose logs to fetch
	Limit    int             // at most this many lines, 1 to MaxLogLines; 0 means 100
	MinLevel string          // the lowest zerolog level to include ("debug", "info", ...); "" for all
	// Search keeps the lines holding this text, ignoring case: at most
	// MaxLogSearch bytes of UTF-8 text without control characters; ""
	// for all.
	Search string
	// Since keeps the lines written after the line of this sequence
	// number (Logs.Last of an earlier answer): a follower's cursor. 0 for
	// all.
	Since uint64
}

// MaxLogSearch caps LogsQuery.Search.
const MaxLogSearch = 256

// Logs are a node's most recent log lines, oldest first.
type Logs struct {
	Node  actors.NodeName   `json:"node"`
	Lines []json.RawMessage `json:"lines"` // zerolog JSON objects (a line that is not JSON comes as a string)
	// Truncated: older lines were left out to keep the answer under
	// Config.MaxLogBytes.
	Truncated bool `json:"truncated"`
	// Last is the sequence number of the newest line the node's buffer
	// held when it answered: pass it as since to get the lines written
	// after (a decimal string: exact in JavaScript).
	Last uint64 `json:"last,string"`
}

func (q *LogsQuery) check() (zerolog.Level, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 1 || q.Limit > MaxLogLines {
		return 0, fmt.Errorf("%w: limit %d; use 1 to %d", ErrBadRequest, q.Limit, MaxLogLines)
	}
	if err := checkSearch(q.Search); err != nil {
		return 0, err
	}
	return parseLevel(q.MinLevel)
}

func checkSearch(s string) error {
	if len(s) > MaxLogSearch {
		return fmt.Errorf("%w: a search of %d bytes; at most %d", ErrBadRequest, len(s), MaxLogSearch)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: search %q: use printable UTF-8 text, without control characters", ErrBadRequest, s)
	}
	return nil
}

func parseLevel(s string) (zerolog.Level, error) {
	if s == "" {
		return zerolog.TraceLevel, nil
	}
	l, err := zerolog.ParseLevel(s)
	if err != nil || l == zerolog.NoLevel {
		return 0, fmt.Errorf("%w: level %q; valid: trace, debug, info, warn, error, fatal, panic", ErrBadRequest, s)
	}
	return l, nil
}

func newLogs(node actors.NodeName, lines [][]byte, truncated bool, last uint64) Logs {
	out := Logs{Node: node, Lines: make([]json.RawMessage, 0, len(lines)), Truncated: truncated, Last: last}
	for _, l := range lines {
		if !json.Valid(l) {
			l, _ = json.Marshal(string(l))
		}
		out.Lines = append(out.Lines, json.RawMessage(l))
	}
	return out
}
