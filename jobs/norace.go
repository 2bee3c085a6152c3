//go:build !race

package jobs

// raceFactor multiplies a script process's memory budget in binaries built
// with the race detector, whose shadow memory grows with the heap.
const raceFactor = 1
