package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"

	"github.com/troupe-dev/troupe/transport"
)

// Config sets up a [Node]. Start from [DefaultConfig]; NewNode fills any
// zero field from it.
type Config struct {
	Name    NodeName          // the node's identity; letters, digits, '.', '_', '-'
	Network transport.Network // required: transport/remote or transport/sim

	Clock Clock  // source of time for timers and Context.Now; default the wall clock
	Seed  uint64 // seeds every protocol's Context.Rand; 0 seeds from the clock and the node's name
	// Dispatcher runs the protocols' mailboxes; default protoactor's
	// (a goroutine per busy mailbox, 300 messages per turn). A simulation
	// puts every protocol of a cluster on one deterministic dispatcher.
	Dispatcher actor.Dispatcher
	// System, when set, is the protoactor actor system the node runs on
	// instead of one of its own, and Stop leaves it running; one node at a
	// time may use it, and the node's Logger (protoactor's own logs) and
	// MetricProvider do not reach it then. A simulation that restarts nodes many times keeps one
	// per node name: protoactor builds 32768 maps for each system's process
	// registry (2.5 MB, milliseconds).
	System *actor.ActorSystem
	// Logger receives the node's logs, with "node" and "protocol" fields.
	// The zero value logs nothing.
	Logger zerolog.Logger
	// ActorLogLevel filters protoactor's own logs (bridged from slog into
	// Logger): "trace", "debug", "info", "warn", "error" or "disabled".
	ActorLogLevel string

	RequestTimeout time.Duration // default timeout of a local request
	// LatencySampleEvery times one handler run in this many (1 = every
	// run). Message and byte counts are always exact.
	LatencySampleEvery int
	// MetricProvider, when set, turns on protoactor-go's own metrics
	// (actor spawns, restarts, mailbox lengths, message receive times,
	// futures, dead letters). protoactor creates its instruments from
	// OpenTelemetry's global meter provider, not from this one: set both
	// (telemetry.ProtoactorMeterProvider does). It costs every message of
	// the node a histogram update; nil (the default) leaves them off.
	MetricProvider metric.MeterProvider
	Supervision    SupervisionConfig
	Reliable       ReliableConfig
	Stream         StreamConfig // streams (stream.go); each zero field takes its default
}

// SupervisionConfig decides what happens when a handler panics or returns
// an error: restart the protocol after a backoff that doubles with each
// failure in Window, until more than MaxRestarts failures fall in Window.
type SupervisionConfig struct {
	MaxRestarts int           // restarts allowed within Window
	Window      time.Duration // the sliding window failures are counted in
	Backoff     time.Duration // delay before the first restart
	MaxBackoff  time.Duration // cap of the doubling backoff
}

// ReliableConfig tunes reliable delivery (Context.SendReliable).
type ReliableConfig struct {
	RTO         time.Duration // first retransmission after this long without an ack
	MaxRTO      time.Duration // cap of the doubling retransmission timeout
	MaxInFlight int           // unacknowledged messages per (receiver, protocol)
	RecvWindow  int           // out-of-order messages buffered per (sender, protocol)
}

// DefaultConfig returns the defaults of every field but Name and Network.
func DefaultConfig() Config {
	return Config{
		Clock:          RealClock(), // wall clock
		ActorLogLevel:  "warn",      // protoactor is chatty at info
		RequestTimeout: 5 * time.Second,
		// A clock read pair costs about half a local delivery; sampling one
		// run in 16 keeps that to a few ns a message (BenchmarkLocalDelivery).
		LatencySampleEvery: 16,
		Supervision: SupervisionConfig{
			MaxRestarts: 10,          // as protoactor's default one-for-one strategy
			Window:      time.Minute, // ... counted over a minute
			Backoff:     10 * time.Millisecond,
			MaxBackoff:  5 * time.Second,
		},
		Reliable: ReliableConfig{
			RTO:         100 * time.Millisecond, // well above a LAN round trip
			MaxRTO:      2 * time.Second,
			MaxInFlight: 4096,
			RecvWindow:  4096,
		},
		Stream: defaultStreamConfig(), // 1 GiB values, 256 KiB chunks, 2 MiB window
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.ActorLogLevel == "" {
		c.ActorLogLevel = d.ActorLogLevel
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.LatencySampleEvery == 0 {
		c.LatencySampleEvery = d.LatencySampleEvery
	}
	if c.Supervision == (SupervisionConfig{}) {
		c.Supervision = d.Supervision
	}
	if c.Reliable == (ReliableConfig{}) {
		c.Reliable = d.Reliable
	}
	c.Stream = c.Stream.withDefaults(d.Stream)
	return c
}

// Validate reports the first field that is missing or out of range.
func (c Config) Validate() error {
	if err := transport.ValidateName("node", c.Name); err != nil {
		return fmt.Errorf("%w: Name: %v", ErrInvalidConfig, err)
	}
	if c.Network == nil {
		return fmt.Errorf("%w: Network is nil; use transport/remote or transport/sim", ErrInvalidConfig)
	}
	if _, err := zerolog.ParseLevel(c.ActorLogLevel); err != nil || c.ActorLogLevel == "" {
		return fmt.Errorf("%w: ActorLogLevel %q; valid: trace, debug, info, warn, error, disabled", ErrInvalidConfig, c.ActorLogLevel)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout},
		{"Supervision.Window", c.Supervision.Window},
		{"Supervision.Backoff", c.Supervision.Backoff},
		{"Supervision.MaxBackoff", c.Supervision.MaxBackoff},
		{"Reliable.RTO", c.Reliable.RTO},
		{"Reliable.MaxRTO", c.Reliable.MaxRTO},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("%w: %s is %v; it must be positive", ErrInvalidConfig, p.name, p.d)
		}
	}
	if c.LatencySampleEvery < 1 {
		return fmt.Errorf("%w: LatencySampleEvery is %d; use 1 (time every handler run) or more", ErrInvalidConfig, c.LatencySampleEvery)
	}
	if c.Supervision.MaxRestarts < 0 {
		return fmt.Errorf("%w: Supervision.MaxRestarts is %d; use 0 (never restart) or more", ErrInvalidConfig, c.Supervision.MaxRestarts)
	}
	if c.Supervision.MaxBackoff < c.Supervision.Backoff {
		return fmt.Errorf("%w: Supervision.MaxBackoff (%v) is below Backoff (%v)", ErrInvalidConfig, c.Supervision.MaxBackoff, c.Supervision.Backoff)
	}
	if c.Reliable.MaxRTO < c.Reliable.RTO {
		return fmt.Errorf("%w: Reliable.MaxRTO (%v) is below RTO (%v)", ErrInvalidConfig, c.Reliable.MaxRTO, c.Reliable.RTO)
	}
	if c.Reliable.MaxInFlight < 1 || c.Reliable.RecvWindow < 1 {
		return fmt.Errorf("%w: Reliable.MaxInFlight (%d) and RecvWindow (%d) must be at least 1", ErrInvalidConfig, c.Reliable.MaxInFlight, c.Reliable.RecvWindow)
	}
	return c.Stream.validate()
}
