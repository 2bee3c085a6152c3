package telemetry

import "errors"

// Errors of the telemetry protocol; each is wrapped with the detail that
// made it happen. Test with [errors.Is].
var (
	// ErrInvalidConfig: a Config field out of range.
	ErrInvalidConfig = errors.New("telemetry: invalid configuration")
	// ErrUnknownNode: logs asked of a node that is not a member, or that
	// the network cannot reach.
	ErrUnknownNode = errors.New("telemetry: unknown node")
	// ErrNoLogs: the node keeps no log buffer (Config.Logs is nil).
	ErrNoLogs = errors.New("telemetry: node keeps no logs")
	// ErrTimeout: a node did not answer a logs request in time.
	ErrTimeout = errors.New("telemetry: no answer in time")
	// ErrBadRequest: a malformed logs request (a limit or level out of
	// range).
	ErrBadRequest = errors.New("telemetry: bad request")
)
