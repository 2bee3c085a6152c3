package membership

import (
	"fmt"

	"github.com/troupe-dev/troupe/actors"
)

// Change is one step of the membership a protocol follows with [Watch].
type Change struct {
	// View is the membership after Event: every member ever seen, self
	// included, by name. It is shared with later Changes' history, not
	// with them: read it, do not change it.
	View View
	// Event is what changed; nil for the first Change, the view as it was
	// when the protocol started watching.
	Event Event
	// Before is the member Event is about as the view held it before the
	// event, and Known whether the view held it at all (false for a
	// member never seen, and for the first Change).
	Before Member
	Known  bool
}

// Initial reports whether c is the first Change, the view the protocol
// starts from.
func (c Change) Initial() bool { return c.Event == nil }

// Watch makes the calling protocol follow the membership with one call,
// usually from Init: it asks the node's membership protocol (see [Attach])
// for the View and calls fn with it (a Change with a nil Event), then with
// every later event (*MemberJoined, *MemberSuspect, *MemberFailed,
// *MemberLeft, *MemberUpdated) and the view after it, in order: no event
// is lost between the view and the subscription, and none the view already
// holds is given again. Events that arrive before the view are those it
// holds, and are not given.
//
// Watch registers the protocol's OnNotification handlers of the five
// event types (a handler of one of them registered after Watch replaces
// Watch's). fn runs as an event of the protocol, on its goroutine; an
// error it returns is the handler's error. Failing to get the view (the
// membership protocol stopped or did not answer within
// actors.Config.RequestTimeout) is given as an error of that event, so
// the protocol restarts and watches again. Watch fails at once when the
// node runs no membership protocol.
func Watch(ctx *actors.Context, fn func(ctx *actors.Context, ch Change) error) error {
	w := &watcher{fn: fn}
	OnEvent(ctx, w.event)
	err := actors.Request(ctx, Name, ViewRequest{}, 0, func(ctx *actors.Context, v View, err error) error {
		if err != nil {
			return fmt.Errorf("membership: asking the membership protocol of %s for the view: %w", ctx.Node(), err)
		}
		w.view, w.ready = v.with(v.Self), true // a copy, sorted by name, self included
		return fn(ctx, Change{View: w.view})
	})
	if err != nil {
		return fmt.Errorf("membership: watching needs the membership protocol on node %s (membership.Attach): %w", ctx.Node(), err)
	}
	return nil
}

// OnEvent registers fn as the protocol's handler of the five membership
// notifications (*MemberJoined, *MemberSuspect, *MemberFailed,
// *MemberLeft, *MemberUpdated), without a view: for a protocol that knows
// its members otherwise. Most protocols want [Watch].
func OnEvent(ctx *actors.Context, fn func(ctx *actors.Context, ev Event) error) {
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *MemberJoined) error { return fn(ctx, ev) })
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *MemberSuspect) error { return fn(ctx, ev) })
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *MemberFailed) error { return fn(ctx, ev) })
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *MemberLeft) error { return fn(ctx, ev) })
	actors.OnNotification(ctx, func(ctx *actors.Context, ev *MemberUpdated) error { return fn(ctx, ev) })
}

// watcher is one Watch: the view so far, touched only on the protocol's
// goroutine.
type watcher struct {
	fn    func(*actors.Context, Change) error
	view  View
	ready bool // the view has come
}

func (w *watcher) event(ctx *actors.Context, ev Event) error {
	if !w.ready {
		// Published before the membership protocol answered: the view
		// holds it (it answers the view its events have told).
		return nil
	}
	mem := ev.Of()
	before, known := w.view.Get(mem.Name)
	w.view = w.view.with(mem)
	return w.fn(ctx, Change{View: w.view, Event: ev, Before: before, Known: known})
}
