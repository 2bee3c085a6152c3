// Package security holds what a node needs to keep strangers out: mutual
// TLS between nodes against the cluster's CA, and a development CA that
// issues node certificates (`node certs`).
//
// # Usage
//
//	m, err := security.LoadMutualTLS(security.Files{CA: "ca.crt", Cert: "n1.crt", Key: "n1.key"}, log)
//	remote.New(remote.Config{Bind: ":7000", TLS: m})          // protoactor remote (gRPC)
//	membership.New(membership.Config{..., TLS: m})            // SWIM's TCP streams (joins, push-pull)
//
// [MutualTLS.Server] and [MutualTLS.Client] are the two sides of a
// connection: each presents the node's certificate and refuses a peer
// whose certificate the CA did not sign, with a log line naming the peer's
// address, its certificate's subject and issuer, and the reason
// ([ErrPeerRefused]). Host names are not checked: nodes are named, not
// addressed.
//
// A certificate is its node's identity: its subject's common name is the
// node's name ([NodeName]). The handshake accepts any certificate of the
// cluster's CA; the node port (package transport/remote) then accepts from
// a peer only what it sends as the node its certificate names, and a node
// does not start with a certificate issued for another name. Its DNS names
// and addresses (localhost, `node certs --hosts`) are for clients of the
// HTTPS API and name no node.
//
// [NewCA], [CA.Issue] and [WriteDevCerts] make ECDSA P-256 certificates
// with the standard library, for development and tests, one per node name
// (a valid node name, each once); production clusters can use any CA
// whose node certificates carry the node's name as common name and both
// server and client authentication.
//
// [LogLimiter] bounds the warnings hostile input can write: the first few
// of a kind per period, then one line with the count of those held back
// ("… (N similar suppressed)"). The TLS refusals use it, and so does the
// node port.
//
// # Concurrency
//
// A MutualTLS and the configurations it returns are safe for concurrent
// use: handshakes call the verification from any goroutine. A LogLimiter
// is safe for concurrent use; it reports held-back lines on timers, which
// its Close stops (a MutualTLS's limiter is never closed: its timers end
// within a period of the last refusal).
//
// # Testing
//
// The tests run handshakes on loopback between certificates of one CA and
// of two, and check both the refusal and the log line; certs_test.go
// checks the names certificates carry, limiter_test.go the counting of
// held-back lines.
package security
