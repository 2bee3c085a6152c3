//go:build !unix

package actortest

// reservePort reserves nothing where advisory file locks are not at hand:
// FreePorts then relies on the port being free and outside the ephemeral
// range.
func reservePort(int) (release func(), ok bool) { return func() {}, true }
