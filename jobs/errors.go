package jobs

import "errors"

// Errors of the jobs protocol and its runtimes; each is wrapped with the
// detail that made it happen. Test with [errors.Is].
var (
	// ErrInvalidConfig: a Config or runtime setting out of range.
	ErrInvalidConfig = errors.New("jobs: invalid configuration")
	// ErrInvalidJob: a submission that cannot run (empty script, bad JSON
	// input, too many parts, too large).
	ErrInvalidJob = errors.New("jobs: invalid job")
	// ErrUnknownRuntime: the job names a runtime this node does not know.
	ErrUnknownRuntime = errors.New("jobs: unknown runtime")
	// ErrRuntimeDisabled: the runtime exists but the node's configuration
	// does not enable it (exec is off by default).
	ErrRuntimeDisabled = errors.New("jobs: runtime disabled")
	// ErrNotFound: no job of that id on this node.
	ErrNotFound = errors.New("jobs: no such job")
	// ErrNotContact: the job is held by another node (its contact). A
	// StatusRequest forwards to the contact instead of failing with it.
	ErrNotContact = errors.New("jobs: job held by another node")
	// ErrScript: the script failed (syntax, runtime error, missing
	// function, a value that is not JSON).
	ErrScript = errors.New("jobs: script error")
	// ErrStepLimit: a call ran past Limits.MaxSteps.
	ErrStepLimit = errors.New("jobs: step limit exceeded")
	// ErrTimeLimit: a call ran past Limits.Timeout.
	ErrTimeLimit = errors.New("jobs: time limit exceeded")
	// ErrMemoryLimit: a call used more memory than Limits.MaxMemory; its
	// process was killed by the address-space limit.
	ErrMemoryLimit = errors.New("jobs: memory limit exceeded")
	// ErrDepthLimit: a JSON text or value nested deeper than
	// Limits.MaxDepth.
	ErrDepthLimit = errors.New("jobs: depth limit exceeded")
	// ErrStackLimit: a call overflowed its process's stack.
	ErrStackLimit = errors.New("jobs: stack limit exceeded")
	// ErrWorkerCrashed: the process running a call died for another
	// reason (a signal, a runtime fault).
	ErrWorkerCrashed = errors.New("jobs: worker process crashed")
	// ErrPoisonPart: a part exhausted or crashed its worker twice (memory,
	// stack, time, or the worker node itself); the job fails and no node
	// runs the part again.
	ErrPoisonPart = errors.New("jobs: poison part")
	// ErrResultTooLarge: a result over Limits.MaxResultBytes.
	ErrResultTooLarge = errors.New("jobs: result too large")
	// ErrHostNotAllowed: http_get to a host outside the allow list.
	ErrHostNotAllowed = errors.New("jobs: host not allowed")
	// ErrCancelled: the job was cancelled.
	ErrCancelled = errors.New("jobs: cancelled")
	// ErrContactLost: the job's contact node failed or left; the job ended.
	ErrContactLost = errors.New("jobs: contact node lost")
	// ErrCancelUnanswered: a cancellation forwarded to the job's contact
	// got no answer in time (or this node's jobs protocol restarted while
	// it waited); the contact may or may not have cancelled the job.
	ErrCancelUnanswered = errors.New("jobs: the contact did not answer the cancellation")
	// ErrQueryUnanswered: a status query forwarded to the job's contact
	// got no answer in time (or this node's jobs protocol stopped while it
	// waited).
	ErrQueryUnanswered = errors.New("jobs: the contact did not answer the status query")
)
