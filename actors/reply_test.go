package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/actors/actortest"
)

// A ticket is answered later: when a release comes (another event).
type ticket struct {
	actors.Returns[string]
	refuse bool
}

type release struct{ text string }
type crash struct{}

// queue holds the Replies of tickets until a release answers them all.
func queue(answered chan<- error) actors.Factory {
	return protocol("queue", func(ctx *actors.Context) error {
		var held []actors.Reply[string]
		actors.OnRequestDeferred(ctx, func(_ *actors.Context, t ticket, r actors.Reply[string]) error {
			if t.refuse {
				return errors.New("refused at once")
			}
			held = append(held, r)
			return nil
		})
		actors.OnTell(ctx, func(_ *actors.Context, rel release) error {
			for _, r := range held {
				answered <- r.Send(rel.text)
				answered <- r.Send("again") // the second answer fails
			}
			held = nil
			return nil
		})
		actors.OnTell(ctx, func(*actors.Context, crash) error { return errors.New("crash") })
		return nil
	})
}

// callAsync calls from outside and hands the outcome over.
func callAsync(n *actors.Node, req ticket) <-chan error {
	out := make(chan error, 1)
	go func() {
		rep, err := actors.Call(context.Background(), n, "queue", req)
		if err == nil && rep != "go" {
			err = errors.New("unexpected reply " + rep)
		}
		out <- err
	}()
	return out
}

func TestDeferredReplyAnswersFromALaterEvent(t *testing.T) {
	actortest.Virtual(t, testDeferredReplyAnswersFromALaterEvent)
}

func testDeferredReplyAnswersFromALaterEvent(t *testing.T) {
	n := singleNode(t, nil)
	answered := make(chan error, 10)
	if err := n.Start(queue(answered)); err != nil {
		t.Fatal(err)
	}
	first, second := callAsync(n, ticket{}), callAsync(n, ticket{})
	actortest.Eventually(t, wait, "both tickets held", func() bool {
		return n.Stats().Protocols["queue"].Types["actors_test.ticket"].MsgsIn == 2
	})
	if err := n.Tell("queue", release{"go"}); err != nil {
		t.Fatal(err)
	}
	for _, out := range []<-chan error{first, second} {
		if err := actortest.Receive(t, out, wait, "a reply"); err != nil {
			t.Fatalf("the deferred reply: %v", err)
		}
	}
	for i := range 4 {
		err := actortest.Receive(t, answered, wait, "Send's result")
		if want := i%2 == 1; (err != nil) != want || want && !errors.Is(err, actors.ErrAnswered) {
			t.Fatalf("Send #%d of a Reply: %v (a Reply answers once, the second Send fails with ErrAnswered)", i%2+1, err)
		}
	}
	if err := actortest.Receive(t, callAsync(n, ticket{refuse: true}), wait, "a refusal"); err == nil || err.Error() != "refused at once" {
		t.Fatalf("a deferred handler's error: %v, want it as the answer", err)
	}
}

func TestRestartAnswersWhatItLeftUnanswered(t *testing.T) {
	actortest.Virtual(t, testRestartAnswersWhatItLeftUnanswered)
}

func testRestartAnswersWhatItLeftUnanswered(t *testing.T) {
	n := singleNode(t, nil)
	answered := make(chan error, 10)
	if err := n.Start(queue(answered)); err != nil {
		t.Fatal(err)
	}
	out := callAsync(n, ticket{})
	actortest.Eventually(t, wait, "the ticket held", func() bool {
		return n.Stats().Protocols["queue"].Types["actors_test.ticket"].MsgsIn == 1
	})
	start := time.Now()
	if err := n.Tell("queue", crash{}); err != nil {
		t.Fatal(err)
	}
	err := actortest.Receive(t, out, wait, "the answer to a request the restart left")
	if !errors.Is(err, actors.ErrUnanswered) {
		t.Fatalf("a request held across a restart: %v, want ErrUnanswered", err)
	}
	t.Logf("answered %v after the crash: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestDeadContextFailsLoudly(t *testing.T) { actortest.Virtual(t, testDeadContextFailsLoudly) }

func testDeadContextFailsLoudly(t *testing.T) {
	n := singleNode(t, nil)
	old := make(chan *actors.Context, 2)
	if err := n.Start(protocol("mortal", func(ctx *actors.Context) error {
		old <- ctx
		actors.OnTell(ctx, func(*actors.Context, crash) error { return errors.New("crash") })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	first := actortest.Receive(t, old, wait, "the first incarnation's Context")
	if err := n.Tell("mortal", crash{}); err != nil {
		t.Fatal(err)
	}
	actortest.Receive(t, old, wait, "the second incarnation's Context")
	// A goroutine that kept the first Context, as one started in Init
	// would: everything it does fails and is counted.
	if err := first.Tell("mortal", crash{}); !errors.Is(err, actors.ErrDeadContext) {
		t.Errorf("Tell on a dead Context: %v, want ErrDeadContext", err)
	}
	if id := first.After(time.Millisecond, crash{}); id != 0 {
		t.Errorf("After on a dead Context started timer %d", id)
	}
	if got := first.Notify(crash{}); got != 0 {
		t.Errorf("Notify on a dead Context reached %d subscribers", got)
	}
	if err := actors.Request(first, "mortal", ticket{}, time.Second, func(*actors.Context, string, error) error { return nil }); !errors.Is(err, actors.ErrDeadContext) {
		t.Errorf("Request on a dead Context: %v, want ErrDeadContext", err)
	}
	s := n.Stats().Protocols["mortal"]
	if s.Misused != 4 || s.Restarts != 1 {
		t.Fatalf("stats after 4 uses of a dead Context: Misused %d, Restarts %d; want 4 and 1 (the dead Tell must not have crashed the new incarnation)", s.Misused, s.Restarts)
	}
}

// TestRequestDeadlinesFireInOrder: requests awaiting replies time out at
// their own deadlines, in deadline order, whatever order they were sent
// in (one timer serves them all: deadlines.go); a reply takes its request
// out, and a request sent after the others were settled still times out.
func TestRequestDeadlinesFireInOrder(t *testing.T) {
	actortest.Virtual(t, testRequestDeadlinesFireInOrder)
}

func testRequestDeadlinesFireInOrder(t *testing.T) {
	n := singleNode(t, nil)
	type hold struct{ actors.Returns[string] }
	type echoReq struct{ actors.Returns[string] }
	type ask struct {
		req     actors.Asks[string]
		timeout time.Duration
	}
	type outcome struct {
		timeout time.Duration
		rep     string
		err     error
		at      time.Duration
	}
	if err := n.Start(protocol("holder", func(ctx *actors.Context) error {
		var held []actors.Reply[string] // never answered
		actors.OnRequestDeferred(ctx, func(_ *actors.Context, _ *hold, r actors.Reply[string]) error {
			held = append(held, r)
			return nil
		})
		actors.OnRequest(ctx, func(*actors.Context, *echoReq) (string, error) { return "echo", nil })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := make(chan outcome, 10)
	if err := n.Start(protocol("asker", func(ctx *actors.Context) error {
		actors.OnTell(ctx, func(ctx *actors.Context, a *ask) error {
			return actors.Request(ctx, "holder", a.req, a.timeout, func(_ *actors.Context, rep string, err error) error {
				out <- outcome{a.timeout, rep, err, time.Since(start)}
				return nil
			})
		})
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{300, 100, 200} {
		if err := n.Tell("asker", &ask{&hold{}, d * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Tell("asker", &ask{&echoReq{}, time.Hour}); err != nil {
		t.Fatal(err)
	}
	if o := actortest.Receive(t, out, wait, "the echo"); o.err != nil || o.rep != "echo" {
		t.Fatalf("echo request: %+v", o)
	}
	for _, want := range []time.Duration{100, 200, 300} {
		o := actortest.Receive(t, out, wait, "a timeout")
		if o.timeout != want*time.Millisecond || !errors.Is(o.err, actors.ErrTimeout) || o.at != want*time.Millisecond {
			t.Fatalf("got %+v; want the %v request to time out after %v", o, want*time.Millisecond, want*time.Millisecond)
		}
	}
	// The timer, armed for the hour-long request answered long ago, does
	// not hold up a shorter one sent now.
	before := time.Since(start)
	if err := n.Tell("asker", &ask{&hold{}, 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if o := actortest.Receive(t, out, wait, "the last timeout"); !errors.Is(o.err, actors.ErrTimeout) || o.at-before != 50*time.Millisecond {
		t.Fatalf("got %+v after %v; want a timeout 50ms after it was sent", o, o.at-before)
	}
	// Counted as before: each request out under its type, each reply (a
	// timeout included) in under the reply type.
	if st := n.Stats().Protocols["asker"]; st.Types["*actors_test.hold"].MsgsOut != 4 || st.Types["*actors_test.echoReq"].MsgsOut != 1 || st.Types["string"].MsgsIn != 5 {
		t.Fatalf("asker's stats: %+v; want 4 hold and 1 echoReq out, 5 string replies in", st.Types)
	}
}
