// Package jobstest is the test kit of package jobs: a cluster on the
// simulated network with membership, the Bully elector and the jobs
// protocol, and waits on jobs with deadlines.
//
// # Usage
//
//	c := jobstest.NewCluster(t, 5, jobs.DefaultConfig())
//	sub, _ := actors.Call(ctx, c.Node("node-1"), jobs.Name, jobs.Submit{...})
//	st := jobstest.Await(t, c.Node("node-1"), sub.ID, 30*time.Second)
//
// # Concurrency
//
// Helpers call the nodes with actors.Call and may run from any goroutine
// that may fail the test.
//
// # Testing
//
// It is exercised by the tests of packages jobs and api.
package jobstest
