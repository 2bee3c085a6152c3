package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// A part can say how far it has got: a Starlark script calls
// progress(fraction), an exec script writes a line "TROUPE_PROGRESS
// <fraction>" on its standard error, and a Runtime of one's own calls
// ReportProgress with the context Program.Run got. The worker passes the
// latest value on to the job's contact at most every progressEvery per
// part (PartProgress); the contact keeps the highest per running part and
// reports the job's progress in Status.Progress: the parts done plus the
// running parts' fractions, over the parts.

// ProgressLine starts the line an exec script writes on its standard error
// to report a part's progress: "TROUPE_PROGRESS 0.42". The line is not part
// of the script's error output.
const ProgressLine = "TROUPE_PROGRESS"

// progressEvery is the least time between two PartProgress of one part
// from a worker: values reported in between are coalesced to the latest.
const progressEvery = 250 * time.Millisecond

// ErrBadProgress is a progress fraction that is not a number from 0 to 1.
var ErrBadProgress = fmt.Errorf("jobs: bad progress")

// progressSink is where a call's progress goes: report gets each valid
// fraction; ignored, when set, hears why a value was ignored (an exec
// script's malformed line).
type progressSink struct {
	report  func(fraction float64)
	ignored func(reason string)
}

type progressKey struct{}

// WithProgress returns a context that carries fn: [ReportProgress] with it
// (and a Starlark script's progress(fraction), an exec script's progress
// line, in a call of Program.Run given it) calls fn with each fraction.
// fn may be called from any goroutine, concurrently with the call.
func WithProgress(ctx context.Context, fn func(fraction float64)) context.Context {
	return context.WithValue(ctx, progressKey{}, &progressSink{report: fn})
}

func withProgressSink(ctx context.Context, s *progressSink) context.Context {
	return context.WithValue(ctx, progressKey{}, s)
}

// ReportProgress reports the progress of the call ctx belongs to: a
// fraction from 0 (started) to 1 (about to finish). It fails with
// ErrBadProgress for a value out of range or not a number, and does nothing
// when ctx carries no progress function (split and merge, RunLocal).
func ReportProgress(ctx context.Context, fraction float64) error {
	if err := checkFraction(fraction); err != nil {
		return err
	}
	if s, _ := ctx.Value(progressKey{}).(*progressSink); s != nil && s.report != nil {
		s.report(fraction)
	}
	return nil
}

func checkFraction(f float64) error {
	if math.IsNaN(f) || f < 0 || f > 1 {
		return fmt.Errorf("%w: %v is not a fraction; give a number from 0 (started) to 1 (done)", ErrBadProgress, f)
	}
	return nil
}

// ignoreProgress tells ctx's sink why a progress report was ignored.
func ignoreProgress(ctx context.Context, reason string) {
	if s, _ := ctx.Value(progressKey{}).(*progressSink); s != nil && s.ignored != nil {
		s.ignored(reason)
	}
}

// progressWriter is an exec call's standard error: lines that start with
// ProgressLine report progress (a malformed one is ignored, with its
// reason told to the sink), the others go to out. A line longer than
// maxLine is passed on in pieces, never taken for a progress line.
type progressWriter struct {
	ctx  context.Context
	out  io.Writer
	line []byte // the unfinished line
	long bool   // the unfinished line was already longer than maxLine
}

const maxLine = 4096

func (w *progressWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.line = append(w.line, b...)
			if len(w.line) > maxLine {
				_, _ = w.out.Write(w.line)
				w.line, w.long = w.line[:0], true
			}
			break
		}
		w.line = append(w.line, b[:i+1]...)
		b = b[i+1:]
		if !w.long && len(w.line) <= maxLine {
			w.take(w.line)
		} else {
			_, _ = w.out.Write(w.line)
		}
		w.line, w.long = w.line[:0], false
	}
	return n, nil
}

// close passes on what is left of an unfinished line.
func (w *progressWriter) close() {
	if len(w.line) > 0 {
		if w.long {
			_, _ = w.out.Write(w.line)
		} else {
			w.take(w.line)
		}
		w.line = nil
	}
}

// take handles one whole line.
func (w *progressWriter) take(line []byte) {
	text := strings.TrimRight(string(line), "\r\n")
	rest, ok := strings.CutPrefix(text, ProgressLine)
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		_, _ = w.out.Write(line)
		return
	}
	fields := strings.Fields(rest)
	var f float64
	var err error
	if len(fields) != 1 {
		err = fmt.Errorf("%w: want one number after it", ErrBadProgress)
	} else if f, err = strconv.ParseFloat(fields[0], 64); err == nil {
		err = checkFraction(f)
	} else {
		err = fmt.Errorf("%w: %.40q is not a number", ErrBadProgress, fields[0])
	}
	if err != nil {
		ignoreProgress(w.ctx, fmt.Sprintf("ignoring the line %.80q on the script's standard error: %v (the format is %q, a number from 0 to 1)", text, err, ProgressLine+" 0.42"))
		return
	}
	_ = ReportProgress(w.ctx, f)
}

// partProgress is posted to the protocol when a running task reported
// progress and no such post of it waits in the mailbox.
type partProgress struct{ t *task }

// taskProgress is a running task's latest reported progress, written by
// the goroutine running the part and read by the protocol.
type taskProgress struct {
	bits   atomic.Uint64 // math.Float64bits of the latest fraction
	posted atomic.Bool   // a partProgress of the task waits in the mailbox
	// The protocol's own: what it last sent the contact, and when.
	sent    float64
	sentAt  time.Time
	pending bool // a value newer than sent waits for progressEvery to pass
	ignored int  // malformed progress lines, logged once
}

// progressSinkOf is the sink of a task's part: each value is kept as the
// latest, and one post at a time wakes the protocol.
func (p *protocol) progressSinkOf(t *task) *progressSink {
	ref := p.pool.ref
	return &progressSink{
		report: func(f float64) {
			t.progress.bits.Store(math.Float64bits(f))
			if t.progress.posted.CompareAndSwap(false, true) {
				_ = ref.Post(&partProgress{t: t})
			}
		},
		ignored: func(reason string) {
			_ = ref.Post(&progressIgnored{t: t, reason: reason})
		},
	}
}

// progressIgnored tells the protocol a part's malformed progress line.
type progressIgnored struct {
	t      *task
	reason string
}

func (p *protocol) onProgressIgnored(ctx *actors.Context, m *progressIgnored) error {
	t := m.t
	if t.owner != p {
		return nil
	}
	t.progress.ignored++
	ev := ctx.Log().Debug()
	if t.progress.ignored == 1 {
		ev = ctx.Log().Warn()
	}
	ev.Str("job", t.key.id).Uint32("part", t.key.part).Int("ignored", t.progress.ignored).Msg(m.reason)
	return nil
}

// onTaskProgress passes a running part's progress on to its contact, at
// once if progressEvery has passed since the last, else on a later tick.
func (p *protocol) onTaskProgress(ctx *actors.Context, m *partProgress) error {
	t := m.t
	t.progress.posted.Store(false)
	if t.owner != p || t.cancelled || p.work.tasks[t.key] != t {
		return nil
	}
	f := math.Float64frombits(t.progress.bits.Load())
	if f == t.progress.sent && !t.progress.sentAt.IsZero() {
		return nil
	}
	t.progress.pending = true
	p.sendProgress(ctx, t, ctx.Now())
	if t.progress.pending {
		p.wake(ctx)
	}
	return nil
}

func (p *protocol) sendProgress(ctx *actors.Context, t *task, now time.Time) {
	if !t.progress.sentAt.IsZero() && now.Sub(t.progress.sentAt) < progressEvery {
		return
	}
	f := math.Float64frombits(t.progress.bits.Load())
	t.progress.sent, t.progress.sentAt, t.progress.pending = f, now, false
	p.stats.ProgressSent++
	p.send(ctx, t.contact, &pb.PartProgress{Id: t.key.id, Part: t.key.part, Fraction: f})
}

// progressPending reports whether a part's progress waits to be sent.
func (p *protocol) progressPending() bool {
	for _, t := range p.work.tasks {
		if t.progress.pending {
			return true
		}
	}
	return false
}

// flushProgress sends, on the tick, the progress held back for
// progressEvery.
func (p *protocol) flushProgress(ctx *actors.Context) {
	now := ctx.Now()
	var due []*task
	for _, t := range p.work.tasks {
		if t.progress.pending {
			due = append(due, t)
		}
	}
	// In part order: map order would vary the protocol's messages.
	slices.SortFunc(due, func(a, b *task) int {
		return comparePartRefs(&pb.PartRef{Id: a.key.id, Part: a.key.part}, &pb.PartRef{Id: b.key.id, Part: b.key.part})
	})
	for _, t := range due {
		p.sendProgress(ctx, t, now)
	}
}

// onPartProgress records, at the contact, how far a running part has got.
// A value that is not a fraction, or for a part that is done, not in the
// job or of a job that ended, is dropped: progress is for display, and a
// part's highest value counts (a backup copy may lag behind the first).
func (p *protocol) onPartProgress(ctx *actors.Context, from actors.NodeName, m *pb.PartProgress) error {
	o := p.owned[m.Id]
	if o == nil || o.state.Ended() || o.merging || o.total < 0 || int(m.Part) >= o.total {
		return nil
	}
	if err := checkFraction(m.Fraction); err != nil {
		ctx.Log().Debug().Str("from", string(from)).Str("job", m.Id).Uint32("part", m.Part).Err(err).Msg("dropping a malformed part progress")
		return nil
	}
	if _, done := o.results[m.Part]; done {
		return nil
	}
	if o.running == nil {
		o.running = map[uint32]float64{}
	}
	o.running[m.Part] = max(o.running[m.Part], m.Fraction)
	return nil
}

// progress is the job's progress from 0 to 1: the parts done and the
// running parts' reported fractions, over the parts; 1 once it succeeded.
func (o *owned) progress() float64 {
	switch {
	case o.state == Succeeded:
		return 1
	case o.total <= 0:
		return 0
	case o.state.Ended():
		return float64(o.nDone) / float64(o.total)
	}
	sum := float64(len(o.results))
	for _, f := range o.running {
		sum += f
	}
	return min(sum/float64(o.total), 1)
}
