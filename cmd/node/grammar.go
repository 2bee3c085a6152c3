package main

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-dev/troupe/api"
)

// The grammar every command that talks to a node shares: --node, --token
// and --ca, with TROUPE_NODE, TROUPE_TOKEN and TROUPE_CA as their
// defaults; errors that name the address that failed and say what it
// looks like; and an unknown subcommand refused with a suggestion.

// defaultNodeAddr is the API a client command talks to without --node or
// TROUPE_NODE: node run's default --http.
const defaultNodeAddr = "127.0.0.1:8080"

// clientOptions are the flags of the commands that talk to a node's API.
type clientOptions struct {
	node, token, ca string
	// timeout bounds each request; 0: the api.Client's default.
	timeout time.Duration
}

// flags adds --node, --token and --ca to f. Their defaults come from the
// environment when the command runs (help never prints a token, and a
// variable set after the command tree is built still counts).
func (o *clientOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&o.node, "node", "", "the node's HTTP API, host:port or URL (default: env TROUPE_NODE, else "+defaultNodeAddr+")")
	f.StringVar(&o.token, "token", "", "the API's bearer token (default: env TROUPE_TOKEN)")
	f.StringVar(&o.ca, "ca", "", "CA certificate (PEM) to check an https:// node with (default: env TROUPE_CA)")
}

// addr is the node's API address: --node, else TROUPE_NODE, else
// defaultNodeAddr.
func (o *clientOptions) addr() string {
	return cmp.Or(o.node, os.Getenv("TROUPE_NODE"), defaultNodeAddr)
}

// client is the API client the flags describe.
func (o *clientOptions) client() (*api.Client, error) {
	c := api.NewClient(o.addr())
	c.Token = cmp.Or(o.token, os.Getenv("TROUPE_TOKEN"))
	hc, err := httpClient(o.ca, cmp.Or(o.timeout, c.HTTP.Timeout))
	if err != nil {
		return nil, err
	}
	c.HTTP = hc
	return c, nil
}

// unreachableError is a request that got no HTTP answer from a node: it
// names the address and says what the address looks like.
type unreachableError struct {
	addr string     // host:port
	hint string     // what the address looks like and what to do
	err  *url.Error // the request's error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("reaching the node at %s: %s\n  (%v)", e.addr, e.hint, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// The hints of unreachableError.
const (
	apiIsHTTP  = "the HTTP API is the address of node run --http (api.listen; --node defaults to " + defaultNodeAddr + ")"
	hintGRPC   = "it answers in binary, not HTTP: this looks like the node's gRPC port (node run --bind); " + apiIsHTTP
	hintClosed = "it closed the connection without an HTTP answer: this looks like the node's gossip port " +
		"(node run --gossip, by default --bind's port + 1) or its gRPC port with TLS (--bind); " + apiIsHTTP
	hintRefused = "nothing listens there (connection refused): is the node running, and is this the address of its node run --http (api.listen)?"
	hintTimeout = "no answer in time: the node may be stopped, paused or overloaded, or a firewall drops the packets"
	hintPlain   = "it speaks plain HTTP, not HTTPS: use http:// in --node"
	hintCA      = "its certificate is not signed by a CA this client trusts: give the cluster's CA with --ca (or TROUPE_CA)"
	hintHTTPS   = "it speaks HTTPS: use https:// in --node (and --ca, or TROUPE_CA, for a development CA)"
)

// explain turns a request that got no HTTP answer into an error that
// names the address and says what it looks like (the gRPC or gossip port
// rather than the HTTP API, nothing listening, plain HTTP against HTTPS);
// other errors pass unchanged, but an HTTPS API asked in plain HTTP.
func explain(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "Client sent an HTTP request to an HTTPS server") {
		return fmt.Errorf("%w\n  (%s)", err, hintHTTPS)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	addr := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
		addr = u.Host
	}
	msg := ue.Err.Error()
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hint string
	switch {
	case strings.Contains(msg, "malformed HTTP") || strings.Contains(msg, "does not look like a TLS handshake"):
		hint = hintGRPC
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		hint = hintPlain
	case errors.As(ue.Err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		hint = hintCA
	case ue.Timeout():
		hint = hintTimeout
	case errors.Is(ue.Err, syscall.ECONNREFUSED):
		hint = hintRefused
	case errors.Is(ue.Err, io.EOF) || errors.Is(ue.Err, io.ErrUnexpectedEOF) || errors.Is(ue.Err, syscall.ECONNRESET):
		hint = hintClosed
	case errors.As(ue.Err, &dns):
		hint = fmt.Sprintf("the host %q does not resolve", dns.Name)
	default:
		hint = "no HTTP answer"
	}
	if (hint == hintClosed || hint == "no HTTP answer") && speaksHTTP2First(addr) {
		// A gRPC server sends its HTTP/2 settings as soon as it accepts:
		// net/http may take them for an unsolicited response on an idle
		// connection, or see the connection end, before its request.
		hint = hintGRPC
	}
	return &unreachableError{addr: addr, hint: hint, err: ue}
}

// speaksHTTP2First reports whether the server at addr, as soon as it
// accepts a connection and before it is sent anything, sends an HTTP/2
// SETTINGS frame, as a gRPC server does (an HTTP/1.1 API waits for the
// request; memberlist's TCP listener waits too).
func speaksHTTP2First(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var head [9]byte // a frame header: length (3 bytes), type, flags, stream
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return false
	}
	const settings = 0x4
	return head[3] == settings && head[5]|head[6]|head[7]|head[8] == 0
}

// unknownCommand is the error for an unknown subcommand name of cmd: it
// suggests the nearest ones and lists the valid ones.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets on the root only
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", strings.Join(s, `" or "`))
	}
	var valid []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			valid = append(valid, c.Name())
		}
	}
	return fmt.Errorf("%s (valid: %s; %s --help shows them)", msg, strings.Join(valid, ", "), cmd.CommandPath())
}

// finish applies the shared grammar to cmd and every command under it: a
// command with subcommands refuses an unknown one (cobra prints help and
// succeeds), and every command's errors go through explain.
func finish(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		finish(c)
	}
	if cmd.HasParent() && cmd.HasSubCommands() {
		if cmd.Run == nil && cmd.RunE == nil {
			// The flags of the subcommand meant are unknown here: let the
			// error be about the command.
			cmd.FParseErrWhitelist.UnknownFlags = true
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return cmd.Help()
				}
				return unknownCommand(cmd, args[0])
			}
		} else {
			args := cmd.Args
			if args == nil {
				args = cobra.ArbitraryArgs
			}
			cmd.Args = func(cmd *cobra.Command, a []string) error {
				err := args(cmd, a)
				if err != nil && len(a) > 0 {
					return unknownCommand(cmd, a[0])
				}
				return err
			}
		}
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return explain(run(cmd, args)) }
	}
}
