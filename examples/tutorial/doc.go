// Package tutorial keeps docs/tutorial.md true: its test extracts the
// tutorial's code blocks (each marked with the file it belongs to),
// writes them out as a module of their own that requires Troupe through a
// replace directive, and vets, tests, builds and runs it as a newcomer
// would, with no protoc on the PATH.
//
// # Usage
//
//	go test ./examples/tutorial
//
// The line before each of the tutorial's Go blocks names its file in the
// module (`counter.go`), or `counter.go` (continued) for the next part of
// a file named before: the parts are joined in order. The
// shell block after <!-- nodes --> is how the tutorial starts its node
// processes: the test runs those lines with free ports in place of the
// tutorial's.
//
// # Concurrency
//
// The package has no code outside its test.
//
// # Testing
//
// TestTutorial is skipped under -short. It needs the Go module cache
// that building this repository fills (the tutorial's module is built
// with GOPROXY=off).
package tutorial
