//go:build race

package actortest

// RaceEnabled tells whether the binary was built with -race.
const RaceEnabled = true
