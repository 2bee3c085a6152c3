package actors

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestProtoactorLogQuietsAGracefulClose: the EndpointWriter's lost
// connection is an error when the peer went away (Unavailable), and a
// debug line when this process closed the stream itself (Canceled).
func TestProtoactorLogQuietsAGracefulClose(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string // the level logged; "" for none at warn
	}{
		{status.Error(codes.Canceled, "grpc: the client connection is closing"), ""},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), `"level":"error"`},
		{errors.New("some other failure"), `"level":"error"`},
	} {
		var out bytes.Buffer
		log := slog.New(protoactorLog{zerolog.NewSlogHandler(zerolog.New(&out).Level(zerolog.WarnLevel))}).With(slog.String("system", "x"))
		log.Error("EndpointWriter lost connection", slog.String("address", "127.0.0.1:7000"), slog.Any("error", c.err))
		if got := out.String(); c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%v: logged %q, want %q", c.err, got, c.want)
		}
	}
	// At debug, the graceful close is still there, as debug.
	var out bytes.Buffer
	log := slog.New(protoactorLog{zerolog.NewSlogHandler(zerolog.New(&out).Level(zerolog.DebugLevel))})
	log.Error("EndpointWriter lost connection", slog.Any("error", status.Error(codes.Canceled, "closing")))
	if !strings.Contains(out.String(), `"level":"debug"`) {
		t.Errorf("at debug: %q", out.String())
	}
}
