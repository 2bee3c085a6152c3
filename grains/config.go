package grains

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/troupe-dev/troupe/transport"
)

// Config sets up the actor cluster on one node.
type Config struct {
	// Kinds are the grain kinds this node hosts, each a
	// cluster.NewKind(name, props): registered before Start, fixed for
	// the node's run. A kind's name is 1 to 253 letters, digits, '.', '_'
	// or '-'. The node must announce the same names in its membership
	// (membership.Config.Kinds = cfg.KindNames()): that is how the other
	// nodes learn where a kind lives. A node with none calls grains but
	// hosts none.
	Kinds []*cluster.Kind
	// ClusterName names protoactor's cluster (cluster.Config.Name).
	ClusterName string // default "troupe"
	// RequestTimeout bounds a grain request (cluster.Request) when the
	// caller sets no deadline of its own.
	RequestTimeout time.Duration // default 5 s
	// ActivationTimeout bounds asking a grain's owner for its activation.
	ActivationTimeout time.Duration // default 2 s
	// MaxActivations bounds the grains active on this node at once; an
	// activation beyond it is refused (the caller's request fails).
	MaxActivations int // default 100000
	// MaxIdentity bounds a grain identity, in bytes (UTF-8).
	MaxIdentity int // default 256
	// Mailbox is the size of each grain's mailbox: when it is full, the
	// oldest message is dropped (its request times out), so a flood
	// cannot grow a grain's memory without bound.
	Mailbox int // default 1024
}

// DefaultConfig returns a configuration with every default and no kinds.
func DefaultConfig() Config {
	return Config{
		ClusterName:       "troupe",
		RequestTimeout:    5 * time.Second,
		ActivationTimeout: 2 * time.Second,
		MaxActivations:    100_000,
		MaxIdentity:       256,
		Mailbox:           1024,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ClusterName == "" {
		c.ClusterName = d.ClusterName
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ActivationTimeout == 0 {
		c.ActivationTimeout = d.ActivationTimeout
	}
	if c.MaxActivations == 0 {
		c.MaxActivations = d.MaxActivations
	}
	if c.MaxIdentity == 0 {
		c.MaxIdentity = d.MaxIdentity
	}
	if c.Mailbox == 0 {
		c.Mailbox = d.Mailbox
	}
	return c
}

// Validate names every bad field and what is valid.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, k := range c.Kinds {
		switch {
		case k == nil || k.Props == nil:
			errs = append(errs, fmt.Errorf("grains: Kinds[%d] is nil or has no Props; make kinds with cluster.NewKind(name, props)", i))
		case seen[k.Kind]:
			errs = append(errs, fmt.Errorf("grains: kind %q is registered twice", k.Kind))
		default:
			if err := transport.ValidateName("grain kind", k.Kind); err != nil {
				errs = append(errs, fmt.Errorf("grains: Kinds[%d]: %w", i, err))
			}
			seen[k.Kind] = true
		}
	}
	if err := transport.ValidateName("cluster", c.ClusterName); err != nil {
		errs = append(errs, fmt.Errorf("grains: ClusterName: %w", err))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RequestTimeout", c.RequestTimeout}, {"ActivationTimeout", c.ActivationTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("grains: %s is %v; give a positive duration (0: the default)", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxActivations", c.MaxActivations}, {"MaxIdentity", c.MaxIdentity}, {"Mailbox", c.Mailbox}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("grains: %s is %d; give a positive number (0: the default)", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

// KindNames are the names of the kinds, sorted: what the node announces
// in its membership (membership.Config.Kinds).
func (c Config) KindNames() []string {
	var names []string
	for _, k := range c.Kinds {
		if k != nil {
			names = append(names, k.Kind)
		}
	}
	slices.Sort(names)
	return names
}

// checkIdentity checks a grain identity: what a caller asks for and what
// an activation request from the network names.
func checkIdentity(identity string, max int) error {
	switch {
	case identity == "":
		return fmt.Errorf("%w: the identity is empty; give 1 to %d bytes of UTF-8", ErrBadIdentity, max)
	case len(identity) > max:
		return fmt.Errorf("%w: the identity is %d bytes; at most %d are allowed (Config.MaxIdentity)", ErrBadIdentity, len(identity), max)
	case !utf8.ValidString(identity):
		return fmt.Errorf("%w: the identity %q is not valid UTF-8", ErrBadIdentity, identity)
	}
	return nil
}
