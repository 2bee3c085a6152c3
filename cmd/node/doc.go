// Command node runs Troupe nodes and talks to them. `node run` runs one
// node (membership, Bully election, jobs, telemetry, the HTTP API with the
// dashboard) from a configuration file, environment variables and flags;
// `node job`, `node members`, `node leader`, `node status`, `node raft` and
// `node config` use a node's API, `node kv` its replicated key-value store
// and `node lock` its lease locks; `node certs` makes development
// certificates for mutual TLS; `node demo` starts a 5-node cluster in this
// process and runs the sample job on it.
package main
