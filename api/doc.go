// Package api is a node's HTTP API, in JSON: jobs, members and the leader;
// with the dashboard, metrics and telemetry of package telemetry.
//
// # Usage
//
//	http.ListenAndServe(":8080", api.New(node, api.Config{}))
//
// Endpoints (fixed contracts):
//
//	POST   /v1/jobs       {"runtime","script","input","parts","name"} → 202 {"id"}
//	GET    /v1/jobs/{id}  → {"id","state","parts_total","parts_done","result","error","progress"}; "waiting" (why it cannot progress) while it cannot; "name", "traceback" when set; from any node;
//	                        ?wait=30s: a long poll, answered when the job ends or the wait (at most 1m) is over
//	GET    /v1/jobs       → [status, ...] (every member's jobs, newest first; ?scope=node: this node's only)
//	DELETE /v1/jobs/{id}  → 200 status (the job at its contact, after the cancellation), from any node
//	GET    /v1/members    → [{"name","address","state"}]
//	GET    /v1/leader     → {"leader","term"}; with no leader also "reason" (no_quorum, election), "message", "reachable", "voters", "reachable_voters"
//	GET    /v1/keys?prefix=&after=&limit=  → kv.Browse with mutex.LocksRequest's locks: {"node","applied","keys":[{"key","size","value","cut","binary"}],"more","locks":[{"name","owner","token","ttl_ns","expires_in_ns"}]}
//	                      the keys (paged: limit 1 to 1000, default 100; after = the last key of the previous page) and held
//	                      locks of this node's raft replica by prefix (at most 1024 bytes); read-only and not linearizable;
//	                      404 no_raft on a node without a raft group
//
// and, served by package telemetry (the node must run it):
//
//	GET    /              the dashboard (members, charts, raft, keys and locks, jobs, alerts, logs); ?static=1 draws once, without streams
//	GET    /metrics       Prometheus text: Troupe's per-protocol metrics, Go and process metrics
//	GET    /v1/telemetry  the node's telemetry.Snapshot of the cluster
//	GET    /v1/telemetry/events  server-sent events, a snapshot every 500ms
//	GET    /v1/alerts     active alerts, then resolved ones and events, newest first (docs/telemetry.md)
//	GET    /v1/logs/{node}?limit=&level=&q=&since=  a member's recent logs
//	GET    /v1/logs/{node}/follow?limit=&level=&q=  server-sent events: its latest lines, then the new ones
//	GET    /v1/telemetry/history?window=&node=&since=  the members' figures over time (CPU, RSS, goroutines, mailboxes, rates)
//	GET    /v1/telemetry/raft  the raft group as the node sees it: voters, quorum, each member's role, commit, applied, the leader's follower lag
//
// state is one of pending, running, succeeded, failed, cancelled. A GET
// endpoint answers HEAD too. Bodies and query strings parse strictly: a
// body is one JSON object of the fields above (an unknown field, or
// anything after the object, is refused); none of these endpoints takes a
// query parameter but those shown (GET /v1/jobs takes scope). Errors are {"error": "...", "code": "..."} (one shape
// for every endpoint of the node, package internal/httpjson): 400
// bad_request for a malformed request, an invalid job or an unknown
// runtime, 403 for a disabled runtime, 404 not_found for an unknown path,
// an unknown job (at its contact; any node asks the contact) and the
// cancellation of an id that is no job id, 405 method_not_allowed with an
// Allow header, 410 gone when the job's contact is gone, 413
// body_too_large over Config.MaxBodyBytes, 503 unavailable when the node's
// protocols do not answer in time.
//
// DELETE /v1/jobs/{id} works through any node. A node that is not the
// job's contact (named in the id, "<contact>.<generation>.<number>")
// forwards the cancellation and answers with the contact's reply, within
// Config.Timeout: 200 and the job's status (cancelled, or the end the job
// had already reached: cancelling twice is harmless), 404 not_found when
// the contact holds no such job (it never existed, or it belonged to an
// earlier incarnation of the contact's jobs protocol), 410 gone when the
// contact is not a live member or fails or leaves before it answers, 504
// timeout when it does not answer in time: the cancellation may or may not
// have reached it (GET the job at its contact to know).
//
// GET /v1/jobs/{id} works through any node the same way: 200 and the
// contact's status, 404, 410 or 504 as above. A status's "error" is one
// line ("run part 7 on node-3: jobs: script error: cpu.star:25:9: in run:
// …"); "traceback" holds the whole error when there is more (a list
// leaves it out). GET /v1/jobs asks every live member for its jobs and
// answers when all did, or at Config.Timeout; the members that did not
// answer are named in the Troupe-Missing-Members header (their jobs are
// not listed), those with more jobs than one answer carries in
// Troupe-Truncated-Members (only their newest are listed); both are
// absent when the list is whole. [Client.ListJobs] reads them.
//
// [RequireToken] wraps any handler (the node wraps its whole mux, so every
// endpoint added later is covered) with bearer-token authentication: a
// request without "Authorization: Bearer <token>" gets 401, a
// WWW-Authenticate: Bearer challenge and {"error", "code": "unauthorized"}.
// A browser opens /?token=<token> once and gets a cookie that
// authenticates its GETs (the dashboard). A [Token] can change while a
// server runs; the node binary keeps its token until a restart (DESIGN
// §7). [Client] sends Client.Token.
//
// # Concurrency
//
// The handler serves requests concurrently; each asks the node's protocols
// (actors.Call; jobs.CancelJob, jobs.JobStatus and jobs.ListJobs for what another node may answer) and waits at most
// Config.Timeout.
//
// # Testing
//
// The tests run the handler under httptest against a small cluster on the
// simulated network.
package api
