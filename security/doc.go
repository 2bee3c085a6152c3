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
// addressed, and the CA is the trust boundary.
//
// [NewCA], [CA.Issue] and [WriteDevCerts] make ECDSA P-256 certificates
// with the standard library, for development and tests; production
// clusters can use any CA whose node certificates carry both server and
// client authentication.
//
// # Concurrency
//
// A MutualTLS and the configurations it returns are safe for concurrent
// use: handshakes call the verification from any goroutine.
//
// # Testing
//
// The tests run handshakes on loopback between certificates of one CA and
// of two, and check both the refusal and the log line.
package security
