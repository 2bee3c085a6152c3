package remote

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/troupe-dev/troupe/security"
)

// loggedCreds logs the TLS handshakes the gRPC server refuses or that fail
// (protoactor silences gRPC's own log). Refusals of a certificate are
// logged by security.MutualTLS already, with the certificate's names; this
// adds the other failures: a client that aborted because it does not trust
// this node's certificate, one that does not speak TLS, a timeout.
type loggedCreds struct {
	credentials.TransportCredentials
	log *security.LogLimiter
}

func (c loggedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil && !errors.Is(err, security.ErrPeerRefused) {
		const kind = "refused a connection: the TLS handshake failed (a node without the cluster's CA or certificate, or not speaking TLS)"
		c.log.Warn(kind).Str("peer", raw.RemoteAddr().String()).Err(err).Msg(kind)
	}
	return conn, info, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// dialCreds is gRPC's TLS for dialling, with a configuration per
// connection that knows the address dialled, so that a refused server is
// logged with it. It also holds the server to its name: the certificate
// must name a node the directory has at the address dialled (protoactor
// dials the address of the node a batch is for), so that a member of the
// cluster listening at an address the directory gives another node does
// not receive that node's messages.
type dialCreds struct {
	m   *security.MutualTLS
	net *Network
	log *security.LogLimiter
}

// kindServerName is the log kind of a server refused for its name.
const kindServerName = "refused a server: its certificate names a node the directory has elsewhere"

func (c dialCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := credentials.NewTLS(c.m.Client(raw.RemoteAddr().String(), "h2")).ClientHandshake(ctx, authority, raw)
	if err != nil {
		return conn, info, err
	}
	name := ""
	if t, ok := info.(credentials.TLSInfo); ok && len(t.State.PeerCertificates) > 0 {
		name = security.NodeName(t.State.PeerCertificates[0])
	}
	if addr, ok := c.net.Resolve(name); !ok || addr != authority {
		_ = conn.Close()
		c.log.Warn(kindServerName).Str("peer", raw.RemoteAddr().String()).Str("dialled", authority).Str("certificate", name).Str("directory", addr).Msg(kindServerName)
		return nil, nil, fmt.Errorf("%w: the server at %s presented a certificate for node %q, which the directory has at %q; a node's certificate names it",
			security.ErrPeerRefused, authority, name, addr)
	}
	return conn, info, nil
}

func (c dialCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("remote: dialCreds is for clients only")
}

func (c dialCreds) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(c.m.Client("", "h2")).Info()
}

func (c dialCreds) Clone() credentials.TransportCredentials { return c }

func (c dialCreds) OverrideServerName(string) error { return nil }
