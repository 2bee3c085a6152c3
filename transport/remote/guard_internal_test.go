package remote

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupe-dev/troupe/security"
	"github.com/troupe-dev/troupe/transport"
)

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

type lines struct{ strings.Builder }

// TestGuardRecoversAPanic: a panic while serving a method the node serves
// ends the call with codes.Internal, is told to Reject and logged; a
// method the node does not serve never reaches its handler.
func TestGuardRecoversAPanic(t *testing.T) {
	var log lines
	limiter := security.NewLogLimiter(zerolog.New(&log), 10, time.Hour)
	defer limiter.Close()
	var refused []error
	g := &guard{node: "b", reject: func(err error) { refused = append(refused, err) }, log: limiter}
	ss := ctxStream{ctx: context.Background()}
	err := g.stream(nil, ss, &grpc.StreamServerInfo{FullMethod: receiveMethod}, func(any, grpc.ServerStream) error { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Errorf("a panicking Receive: %v; want codes.Internal", err)
	}
	if len(refused) != 1 || !errors.Is(refused[0], transport.ErrMalformed) || !strings.Contains(refused[0].Error(), "panicked: boom") {
		t.Errorf("refusals %v; want one naming the panic", refused)
	}
	if !strings.Contains(log.String(), kindPanic) || !strings.Contains(log.String(), `"panic":"boom"`) {
		t.Errorf("the panic is not logged:\n%s", log.String())
	}
	called := false
	handler := func(any, grpc.ServerStream) error { called = true; return nil }
	err = g.stream(nil, ss, &grpc.StreamServerInfo{FullMethod: "/remote.Remoting/Other"}, handler)
	if status.Code(err) != codes.Unimplemented || called {
		t.Errorf("an unserved stream: %v, handler called %v; want codes.Unimplemented without the handler", err, called)
	}
	_, err = g.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/remote.Remoting/ListProcesses"},
		func(context.Context, any) (any, error) { called = true; return nil, nil })
	if status.Code(err) != codes.Unimplemented || called {
		t.Errorf("ListProcesses: %v, handler called %v; want codes.Unimplemented without the handler", err, called)
	}
}
