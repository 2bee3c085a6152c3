package actors

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// ProtocolRestarted is published (as a notification, to every subscriber on
// the node) each time a protocol is restarted after a failure.
type ProtocolRestarted struct {
	Node     NodeName
	Protocol ProtocolName
	Reason   string        // the panic or the handler's error
	Restarts int64         // restarts of this protocol so far
	Backoff  time.Duration // delay before the new incarnation starts
}

// ProtocolStopped is published when a protocol failed more often than
// SupervisionConfig allows and is stopped for good.
type ProtocolStopped struct {
	Node     NodeName
	Protocol ProtocolName
	Reason   string // the last failure
	Failures int    // failures within Window
	Window   time.Duration
}

func (e *ProtocolRestarted) log(l *zerolog.Logger) {
	l.Warn().Str("reason", e.Reason).Int64("restarts", e.Restarts).Dur("backoff", e.Backoff).Msg("protocol failed; restarting")
}

func (e *ProtocolStopped) log(l *zerolog.Logger) {
	l.Error().Str("reason", e.Reason).Int("failures", e.Failures).Dur("window", e.Window).Msg("protocol failed too often; stopped")
}

func (e *ProtocolStopped) String() string {
	return fmt.Sprintf("protocol %s on %s stopped after %d failures in %v: %s", e.Protocol, e.Node, e.Failures, e.Window, e.Reason)
}
