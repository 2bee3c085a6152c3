// Package jobs runs distributed jobs: a user submits a script to any node,
// the leader splits it into parts, the live members run the parts, and the
// node the user contacted merges the results and answers.
//
// # Usage
//
// Every node runs membership (membership.Attach), an elector
// ([election.New]) and then this protocol:
//
//	f, err := jobs.New(jobs.DefaultConfig())
//	node.Start(f)
//	sub, err := actors.Call(ctx, node, jobs.Name, jobs.Submit{Script: src, Input: in})
//	st, err := jobs.JobStatus(ctx, other, sub.ID) // at any node: one that is not the contact asks it
//	st, err = jobs.WaitJob(ctx, other, sub.ID, time.Minute) // answered when the job ends (a long poll)
//	all, err := jobs.ListJobs(ctx, other)          // every live member's jobs; all.Missing: who did not answer
//
// A job script defines split(input, n), run(part) and merge(results) (see
// [Starlark], the default [Runtime], and [Exec] for external interpreters,
// off unless configured). Package api serves this over HTTP.
//
// A failed job's [Status].Error is one line naming the phase (load, split,
// run part N on NODE, merge), the script's file ([Submit].Name) and line,
// and for a limit the configuration key that raises it; the script's
// traceback is in [Status].Traceback.
//
// A part reports how far it has got with progress(fraction) in Starlark, a
// "TROUPE_PROGRESS 0.42" line on an exec script's standard error
// ([ProgressLine]) or [ReportProgress]; the contact counts it in
// [Status].Progress.
//
// [Reconfigure] changes the configuration of a running node (slots,
// limits, runtimes) without a restart; a [DrainRequest] hands a node's parts back
// to the leader before the node leaves the cluster.
//
// Roles, all in the one protocol on each node:
//
//   - contact: the node a job was submitted to. It owns the job: the spec,
//     every part result received, the state users see. It hands the job to
//     the leader, and again, with the parts it already holds, to every new
//     leader (contact.go).
//   - leader: splits the job (on its worker pool) and schedules the parts
//     by pull: a worker grants credits (free slots plus Prefetch) and the
//     leader assigns waiting parts to the worker with the most credit; near
//     the end of a job it starts backup copies of slow parts on idle
//     workers (leader.go). Its state is soft: it is rebuilt from the
//     contacts and workers after a leader change.
//   - worker: runs assigned parts, at most Slots at once, on goroutines off
//     the mailbox, and sends each result to the job's contact (worker.go).
//
// Failures: a worker that fails has its parts queued again; a new leader
// gets every unfinished job from its contact with the parts done, and the
// workers' running parts; a contact that fails ends its jobs — the leader
// drops them and every worker cancels their parts. Orders carry the
// leader's election term and a worker ignores those of a leader older than
// the one it follows. A job that cannot make progress (no leader known,
// no quorum in the raft group, a leader failed or unreachable) says why in
// [Status].Waiting until it can. docs/jobs.md has the reasoning.
//
// # Concurrency
//
// The protocol's state is touched only by its handlers. Scripts run on
// goroutines of a pool the protocol owns; their outcomes come back as local
// messages ([actors.Context.Ref]). Stop cancels them and waits. Runtimes and
// Programs are called from those goroutines, concurrently. The Starlark
// runtime runs each call in a child process of the running binary (package
// jobs' init serves it when TROUPE_JOBS_CHILD is set), bounded in memory
// and killed at its timeout: see [Starlark] and docs/jobs.md, Bounds.
//
// # Testing
//
// The tests run five nodes on the simulated network with SWIM membership
// and the Bully elector, kill workers, leaders and contacts mid-job, and
// compare the distributed result with a single-node run of the same script.
package jobs
