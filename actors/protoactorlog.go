package actors

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// protoactorLog is the slog handler of protoactor's own logs. It lowers to
// debug the one error line a graceful stop causes on purpose:
// "EndpointWriter lost connection" with a gRPC Canceled error. A Canceled
// stream is one this process closed itself ("the client connection is
// closing": the node stops, or its network dropped a peer that left);
// a peer that crashes or goes away gives Unavailable, which stays an
// error.
type protoactorLog struct{ slog.Handler }

func (h protoactorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && r.Message == "EndpointWriter lost connection" && closedHere(r) {
		r.Level = slog.LevelDebug
		if !h.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h protoactorLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return protoactorLog{h.Handler.WithAttrs(attrs)}
}

func (h protoactorLog) WithGroup(name string) slog.Handler {
	return protoactorLog{h.Handler.WithGroup(name)}
}

// closedHere reports whether r's "error" is a gRPC Canceled status.
func closedHere(r slog.Record) bool {
	canceled := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" {
			canceled = status.Code(err) == codes.Canceled
			return false
		}
		return true
	})
	return canceled
}
