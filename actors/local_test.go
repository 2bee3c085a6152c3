package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
	"github.com/troupe-dev/troupe/transport/sim"
)

type (
	inc        struct{ by int } // a command, taken as *inc
	stray      struct{}         // taken by no one
	kick       struct{}         // a command that makes the protocol post
	tock       struct{ n int }  // the protocol's own post
	news       struct{ text string }
	dieNow     struct{}
	afterDeath struct{}
)

// wantNoHandler fails t unless err wraps ErrNoHandler and says each of says.
func wantNoHandler(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if !errors.Is(err, actors.ErrNoHandler) {
		t.Fatalf("%s: %v, want ErrNoHandler", what, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not say %q", what, err, s)
		}
	}
}

// TestTellOfAnUnhandledTypeFails: the sender of a command the protocol has
// no OnTell handler for gets ErrNoHandler at once, naming what the protocol
// takes (the pointer twin when that is the mistake); nothing reaches the
// protocol.
func TestTellOfAnUnhandledTypeFails(t *testing.T) {
	n := singleNode(t, nil)
	got := make(chan int, 1)
	if err := n.Start(protocol("counter", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(_ *actors.Context, i *inc) error { got <- i.by; return nil })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	wantNoHandler(t, "Tell of a value where the handler takes a pointer", n.Tell("counter", inc{by: 1}),
		"protocol counter", "OnTell handler for actors_test.inc", "it handles *actors_test.inc: send that")
	wantNoHandler(t, "Tell of a type nobody handles", n.Tell("counter", stray{}),
		"actors_test.stray", "its OnTell types: ", "*actors_test.inc)")
	ref, err := n.Ref("counter")
	if err != nil {
		t.Fatal(err)
	}
	wantNoHandler(t, "Ref.Tell of a type nobody handles", ref.Tell(stray{}), "actors_test.stray")
	if err := ref.Tell(&inc{by: 2}); err != nil {
		t.Fatal(err)
	}
	if by := actortest.Receive(t, got, wait, "the pointer handled"); by != 2 {
		t.Fatalf("handled inc by %d, want the pointer's 2", by)
	}
	if u := n.Stats().Protocols["counter"].Unhandled; u != 0 {
		t.Fatalf("Unhandled = %d after refused Tells, want 0: they never reached the protocol", u)
	}
}

// TestPostsArePrivate: a protocol's post types are its own. No one can
// Tell them to it, a Ref from Node.Ref cannot Post, and Post takes only
// OnPost types; the protocol's Context.Post reaches its OnPost handler.
func TestPostsArePrivate(t *testing.T) {
	n := singleNode(t, nil)
	got := make(chan int, 1)
	postErr := make(chan error, 1)
	if err := n.Start(protocol("private", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(ctx *actors.Context, _ kick) error {
			postErr <- ctx.Post(kick{}) // a command is no post
			return ctx.Post(tock{n: 7})
		})
		actors.OnPost(ctx, func(_ *actors.Context, m tock) error { got <- m.n; return nil })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	tellErr := make(chan error, 1)
	if err := n.Start(protocol("other", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(ctx *actors.Context, _ kick) error {
			tellErr <- ctx.Tell("private", tock{})
			return nil
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}

	wantNoHandler(t, "Node.Tell of a post type", n.Tell("private", tock{}), "own post")
	if err := n.Tell("other", kick{}); err != nil {
		t.Fatal(err)
	}
	wantNoHandler(t, "Context.Tell of another protocol's post type", actortest.Receive(t, tellErr, wait, "the other protocol's Tell"), "own post")
	ref, err := n.Ref("private")
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Post(tock{}); !errors.Is(err, actors.ErrNotOwner) {
		t.Fatalf("Post through a Ref from Node.Ref: %v, want ErrNotOwner", err)
	}

	if err := n.Tell("private", kick{}); err != nil {
		t.Fatal(err)
	}
	wantNoHandler(t, "Context.Post of a command type", actortest.Receive(t, postErr, wait, "the Post of a command"),
		"OnPost handler for actors_test.kick", "a command the protocol takes by Tell")
	if v := actortest.Receive(t, got, wait, "the post handled"); v != 7 {
		t.Fatalf("post carried %d, want 7", v)
	}
}

// TestNotificationsCannotBeTold: a notification reaches a protocol only by
// publication, never by Tell.
func TestNotificationsCannotBeTold(t *testing.T) {
	n := singleNode(t, nil)
	got := make(chan string, 1)
	if err := n.Start(protocol("reader", func(ctx *actors.Context) error {
		actors.OnNotification(ctx, func(_ *actors.Context, m *news) error { got <- m.text; return nil })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	wantNoHandler(t, "Tell of a notification type", n.Tell("reader", &news{text: "forged"}), "as a notification", "publish it")
	if reached := n.Publish(&news{text: "published"}); reached != 1 {
		t.Fatalf("Publish reached %d subscribers, want 1", reached)
	}
	if text := actortest.Receive(t, got, wait, "the published notification"); text != "published" {
		t.Fatalf("notification %q handled, want the published one", text)
	}
}

// TestOneTypeIsOneKindOfInput: registering a type with two of OnTell,
// OnPost and OnNotification panics at the second registration, naming both.
func TestOneTypeIsOneKindOfInput(t *testing.T) {
	register := map[string]func(*actors.Context){
		"OnTell": func(ctx *actors.Context) { actors.OnTell(ctx, func(*actors.Context, *news) error { return nil }) },
		"OnPost": func(ctx *actors.Context) { actors.OnPost(ctx, func(*actors.Context, *news) error { return nil }) },
		"OnNotification": func(ctx *actors.Context) {
			actors.OnNotification(ctx, func(*actors.Context, *news) error { return nil })
		},
	}
	n := singleNode(t, nil)
	i := 0
	for first, reg1 := range register {
		for second, reg2 := range register {
			if first == second {
				continue
			}
			i++
			panicked := make(chan string, 1)
			if err := n.Start(protocol(actors.ProtocolName(fmt.Sprintf("twice-%d", i)), func(ctx *actors.Context) error {
				defer func() { panicked <- fmt.Sprint(recover()) }()
				reg1(ctx)
				reg2(ctx)
				return nil
			})); err != nil {
				t.Fatal(err)
			}
			msg := <-panicked
			for _, s := range []string{"registers *actors_test.news with " + second, "an " + first + " handler for it already", "one kind of local input"} {
				if !strings.Contains(msg, s) {
					t.Errorf("%s then %s: panic %q does not say %q", first, second, msg, s)
				}
			}
		}
	}
}

// TestPostOnADeadContext: Post through a Context whose incarnation ended
// fails with ErrDeadContext and counts a misuse, as Tell does.
func TestPostOnADeadContext(t *testing.T) {
	n := singleNode(t, nil)
	ctxs := make(chan *actors.Context, 2)
	if err := n.Start(protocol("mortal-post", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(*actors.Context, dieNow) error { return errors.New("told to die") })
		actors.OnPost(ctx, func(*actors.Context, tock) error { return nil })
		ctxs <- ctx
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	first := <-ctxs
	if err := n.Tell("mortal-post", dieNow{}); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, ctxs, wait, "the second incarnation")
	if err := first.Post(tock{}); !errors.Is(err, actors.ErrDeadContext) {
		t.Fatalf("Post on a dead Context: %v, want ErrDeadContext", err)
	}
	if s := n.Stats().Protocols["mortal-post"]; s.Misused != 1 {
		t.Fatalf("Misused = %d after a Post on a dead Context, want 1", s.Misused)
	}
}

// TestTellThatSlipsThroughIsADeadLetter: a Tell accepted against the
// incarnation that registered its type, but handled by a later one that
// does not, is dropped, counted as unhandled and logged.
func TestTellThatSlipsThroughIsADeadLetter(t *testing.T) {
	hub, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var log lockedLog
	n, err := actors.NewNode(actors.Config{Name: "node-1", Network: hub, Logger: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	var incarnation atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	if err := n.Start(protocol("fickle", func(ctx *actors.Context) error {
		if incarnation.Add(1) > 1 {
			return nil // the later incarnations take nothing
		}
		actors.OnTell(ctx, func(*actors.Context, kick) error { close(entered); <-release; return nil })
		actors.OnTell(ctx, func(*actors.Context, dieNow) error { return errors.New("told to die") })
		actors.OnTell(ctx, func(*actors.Context, afterDeath) error { return nil })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := n.Tell("fickle", kick{}); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, entered, wait, "the blocking handler")
	// Both queue behind the blocked handler; afterDeath reaches the
	// second incarnation.
	for _, m := range []any{dieNow{}, afterDeath{}} {
		if err := n.Tell("fickle", m); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	actortest.Eventually(t, wait, "afterDeath counted as unhandled", func() bool {
		return n.Stats().Protocols["fickle"].Unhandled == 1
	})
	actortest.Eventually(t, wait, "a log line naming afterDeath", func() bool {
		return strings.Contains(log.String(), "has no handler for actors_test.afterDeath")
	})
	wantNoHandler(t, "Tell after the new incarnation's Init", n.Tell("fickle", afterDeath{}), "its OnTell types: *actors_test.probe)") // probe: see protocol
}
