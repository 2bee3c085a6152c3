package simulation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/election"
	"github.com/troupe-dev/troupe/jobs"
	"github.com/troupe-dev/troupe/transport/sim"
)

// JobsConfig shapes the jobs scenario. The zero value is the default of
// cmd/sim.
type JobsConfig struct {
	Nodes    int           // default 5
	Duration time.Duration // virtual length; default 30s
	// Every is the mean pause between two submissions; default 1s.
	Every time.Duration
}

// squaresScript is the scenario's job: squares of a list of numbers, spun
// a little so that parts do some work; its merged result does not depend
// on how the input was split.
const squaresScript = `
def split(input, n):
    xs = input["numbers"]
    size = (len(xs) + n - 1) // n
    return [{"xs": xs[i:i + size], "spin": input["spin"]} for i in range(0, len(xs), size)]

def run(part):
    out = []
    for x in part["xs"]:
        y = 0
        for _ in range(part["spin"]):
            y = (y + x * x) % 1000003
        out.append({"sq": x * x, "spun": y})
    return out

def merge(results):
    count, total, spun = 0, 0, 0
    for rs in results:
        for r in rs:
            count += 1
            total += r["sq"]
            spun += r["spun"]
    return {"count": count, "sum": total, "spun": spun}
`

// Jobs is the scenario "jobs": the jobs protocol (package jobs) with the
// Bully elector on the simulated failure detector, its scripts run inline
// (jobs.Config.Inline) so that they stay on virtual time; clients submit
// Starlark jobs to random running nodes and poll their contact for the
// outcome; the nemesis crashes and restarts nodes, partitions the network
// and makes bursts of loss, duplication and reordering (no clock skew: see
// Election).
//
// Checkers: a job that succeeds has the result of a single-node run of the
// same script and input (jobs.RunLocal); no job fails; and every job whose
// contact ran from its submission to the end of the run (and all those
// submitted after the nemesis) has succeeded by then.
func Jobs(cfg JobsConfig) Scenario {
	cfg.Nodes = cmpOr(cfg.Nodes, 5)
	cfg.Duration = cmpOr(cfg.Duration, 30*time.Second)
	cfg.Every = cmpOr(cfg.Every, time.Second)
	return Scenario{
		Name:        "jobs",
		Description: fmt.Sprintf("%d nodes running jobs (Bully, simulated failure detector), clients submitting Starlark jobs, crashes/partitions/bursts; results equal a single-node run, jobs finish", cfg.Nodes),
		Nodes:       cfg.Nodes,
		Duration:    cfg.Duration,
		Network:     sim.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond},
		Setup:       func(w *World) error { return setupJobs(w, cfg) },
	}
}

// simJob is one submission and what became of it.
type simJob struct {
	n         int
	contact   actors.NodeName
	gen       uint64 // the contact's incarnation at submission
	submitted time.Duration
	want      []byte // the single-node result
	id        string
	state     jobs.State
	result    []byte
	why       string
}

func setupJobs(w *World, cfg JobsConfig) error {
	quiet := cfg.Duration - 12*time.Second // the nemesis stops here
	if quiet < 2*time.Second {
		return fmt.Errorf("jobs: Duration %v leaves no time for faults and recovery; use 15s or more", cfg.Duration)
	}
	// In process: the scripts are the simulation's own, and a child
	// process per call would put the machine's scheduling into the run.
	rt, err := jobs.Starlark(jobs.StarlarkConfig{InProcess: true})
	if err != nil {
		return err
	}
	jc := jobs.DefaultConfig()
	jc.Runtimes, jc.Inline, jc.Slots = []jobs.Runtime{rt}, true, 2
	f, err := jobs.New(jc)
	if err != nil {
		return err
	}
	ef, err := election.New(election.Config{Bully: election.BullyConfig{OKTimeout: 150 * time.Millisecond, CoordinatorTimeout: 400 * time.Millisecond}})
	if err != nil {
		return err
	}
	if err := w.Start(ef); err != nil {
		return err
	}
	if err := w.Start(f); err != nil {
		return err
	}
	if err := w.Start(func() actors.Protocol { return &jobsClient{} }); err != nil {
		return err
	}

	var all []*simJob
	var submit func()
	submit = func() {
		next := time.Duration(w.Rand.ExpFloat64() * float64(cfg.Every))
		if w.Sched.Elapsed()+next < cfg.Duration-8*time.Second {
			w.Sched.At(next, KindAction, "", "jobs submit", submit)
		}
		up := w.Up()
		if len(up) == 0 {
			return
		}
		j := &simJob{n: len(all) + 1, contact: up[w.Rand.IntN(len(up))], submitted: w.Sched.Elapsed()}
		j.gen = w.Detector.Generation(j.contact)
		numbers := make([]int, 10+w.Rand.IntN(60))
		for i := range numbers {
			numbers[i] = w.Rand.IntN(1000)
		}
		input, _ := json.Marshal(map[string]any{"numbers": numbers, "spin": 20})
		parts := w.Rand.IntN(9) // 0: the leader's choice
		want, err := jobs.RunLocal(context.Background(), rt, []byte(squaresScript), input, max(parts, 1))
		if err != nil {
			w.Fail(fmt.Errorf("jobs: the single-node run failed: %w", err))
			return
		}
		j.want = want
		all = append(all, j)
		w.Count("jobs_submitted", 1)
		w.Note(fmt.Sprintf("job %d submitted at %s, %d numbers, %d parts", j.n, j.contact, len(numbers), parts))
		_ = w.Node(j.contact).Tell("sim-jobs-client", &clientSubmit{
			spec: jobs.Submit{Script: squaresScript, Input: input, Parts: parts},
			done: func(id string, st jobs.Status, err error) {
				j.id = id
				if err != nil {
					j.state, j.why = jobs.Failed, "refused: "+err.Error()
				} else {
					j.state, j.result, j.why = st.State, st.Result, st.Error
				}
				w.Note(fmt.Sprintf("job %d %s %s %s", j.n, id, j.state, j.why))
				switch {
				case j.state == jobs.Succeeded && !jsonEqual(j.result, j.want):
					w.Fail(fmt.Errorf("jobs: job %d (%s) succeeded with %s; a single-node run gives %s", j.n, id, j.result, j.want))
				case j.state == jobs.Succeeded:
					w.Count("jobs_succeeded", 1)
				case j.state == jobs.Failed:
					w.Fail(fmt.Errorf("jobs: job %d (%s) failed: %s", j.n, id, j.why))
				default:
					w.Count("jobs_"+string(j.state), 1)
				}
			},
		})
	}
	w.Sched.At(2*time.Second, KindAction, "", "jobs submit", submit)

	w.Check("jobs finish", func() error {
		if w.Sched.Halted() || w.Sched.Elapsed() < cfg.Duration {
			return nil // stopped early: another checker failed
		}
		for _, j := range all {
			kept := w.IsUp(j.contact) && w.Detector.Generation(j.contact) == j.gen
			if j.state == "" && (kept || j.submitted >= quiet) {
				return fmt.Errorf("job %d (%q), submitted to %s at %v, whose contact never went down, has not finished by %v", j.n, j.id, j.contact, j.submitted, cfg.Duration)
			}
		}
		return nil
	})
	return w.Nemesis(Nemesis{
		Until: quiet, Every: w.LogUniform(200*time.Millisecond, 2*time.Second),
		Crash: 4, Partition: 3, Burst: 2,
		Downtime:     [2]time.Duration{time.Millisecond, 3 * time.Second},
		PartitionFor: [2]time.Duration{100 * time.Millisecond, 3 * time.Second},
		BurstFor:     [2]time.Duration{200 * time.Millisecond, 2 * time.Second},
		BurstFaults:  sim.Faults{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2, Duplicate: 0.1, Reorder: 0.2},
	})
}

// jsonEqual compares two JSON documents, whatever their spacing.
func jsonEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// jobsClient submits jobs to its node's jobs protocol and polls their
// status until they end, as a user of the HTTP API would, but as events:
// actors.Request instead of a blocking call.
type jobsClient struct{}

type clientSubmit struct {
	spec jobs.Submit
	done func(id string, st jobs.Status, err error)
}

type clientPoll struct {
	id   string
	done func(id string, st jobs.Status, err error)
}

func (c *jobsClient) Name() actors.ProtocolName { return "sim-jobs-client" }

func (c *jobsClient) Init(ctx *actors.Context) error {
	actors.OnTell(ctx, func(ctx *actors.Context, m *clientSubmit) error {
		return actors.Request(ctx, jobs.Name, m.spec, 0, func(ctx *actors.Context, sub jobs.Submitted, err error) error {
			if err != nil {
				m.done("", jobs.Status{}, err)
				return nil
			}
			ctx.After(200*time.Millisecond, &clientPoll{id: sub.ID, done: m.done})
			return nil
		})
	})
	actors.OnTimer(ctx, func(ctx *actors.Context, p *clientPoll) error {
		return actors.Request(ctx, jobs.Name, jobs.StatusRequest{ID: p.id}, 0, func(ctx *actors.Context, st jobs.Status, err error) error {
			if err == nil && st.State.Ended() {
				p.done(p.id, st, nil)
				return nil
			}
			ctx.After(200*time.Millisecond, p) // not yet, or the request timed out
			return nil
		})
	})
	return nil
}
