// Package telemetry lets any node show the whole cluster: every node's
// status (CPU, resident memory, goroutines, each protocol's mailbox depth,
// restarts, message, timer and byte rates, its raft view, its jobs) and
// their history over the last 20 minutes (bounded rings per member,
// [HistoryRequest]), the alerts of every node, and any node's logs
// (searched, followed); with Prometheus metrics and a live dashboard over
// HTTP.
//
// # Usage
//
// Every node runs membership (membership.Attach), and then the telemetry
// protocol; the elector and the jobs protocol are optional (their leader
// and jobs show when they run):
//
//	logs := telemetry.NewLogBuffer(1000)              // the node's logger writes into it
//	f, err := telemetry.New(telemetry.Config{Logs: logs, Probe: telemetry.SystemProbe(dataDir)})
//	node.Start(f)
//	snap, err := actors.Call(ctx, node, telemetry.Name, telemetry.SnapshotRequest{}) // the cluster as node sees it
//	lines, err := actors.Call(ctx, node, telemetry.Name, telemetry.LogsQuery{Node: "node-3", Limit: 100, MinLevel: "info"})
//	http.Handle("/", telemetry.Handler(node, telemetry.HandlerConfig{}))
//
// Each node sends its [Status] every Config.StatusInterval (best effort:
// the next one replaces a lost one) to the aggregator: the leader its
// elector names, or the highest live member of its view while it knows
// none. The aggregator keeps every member's latest status, their figures
// over time and the rate charts; a node asked for a [Snapshot] or a
// [History] fetches the aggregator's (a snapshot's table is reused for
// half an interval), so an idle node sends one status per interval
// whatever the cluster's size. When the leader changes, every node sends
// its latest status to the new aggregator at once.
// A node raises an [Alert] when its membership reports a member suspected,
// failed or left, when its elector reports itself the new leader or no leader for
// Config.LeaderGrace, when its raft group reaches fewer than a majority of
// its voters, when one of its protocols restarts or stops, when a job it
// is contact of fails and when its disk fills past Config.DiskFull; it
// sends the alert reliably to every live member. An alert of a condition
// ([Kind.Lasts]) is active until the node that raised it sees the
// condition end: it stamps the end and sends the alert again, so every
// node holds the same start and end. Every node keeps a bounded history
// with one alert per fact ([Alert.Key]) and episode: when several nodes
// notice the same failure it is one alert with several reporters. A node
// that starts asks one member for its history; a member that comes back is
// sent it. [Snapshot] is the cluster as one node sees it: its SWIM view of
// the members with their latest statuses, the leader, the jobs with their
// progress, the newest alerts and a minute of message rates per protocol.
//
// [Handler] serves the dashboard at / (plain HTML, CSS and JavaScript
// embedded in the binary, updated by server-sent events), /metrics
// (Prometheus text: [NewCollector] exports actors.Node.Stats by protocol
// and message type; [ProtoactorMeterProvider] adds protoactor-go's own
// metrics), and the snapshot, alerts and logs as JSON. Package api mounts
// it beside the node's other endpoints.
//
// # Concurrency
//
// The protocol's state is touched only by its handlers. [LogBuffer] and
// the Prometheus collector are safe for concurrent use; a [Probe] is
// called on the protocol's goroutine. A [LogsQuery] for another node is
// answered from a later event (the node's reply or the timeout) through
// an actors.Reply. The event stream of [Handler]
// runs as long as its request.
//
// # Testing
//
// The tests run clusters on the simulated network with SWIM membership,
// the Bully elector and jobs: every node sees every status; a 25-node
// cluster's dashboard shows a change on every node within 3 s, and every
// survivor again after its aggregator crashed; a crashed node
// raises an alert on every survivor within 2 s of the first detection
// (measured from the events' timestamps); alerts of one node reach all;
// a failed member's alert, a minority's quorum_lost and leader_lost are
// raised and then resolved on every node with the same times; a restarted
// node learns the history; logs come from another node over
// the network, searched and followed; the history ring stays bounded and
// its endpoint refuses bad windows; the raft panel shows the followers'
// lag and a lost quorum; /metrics parses with Prometheus's text parser. A
// test drives every panel of the dashboard in headless Chromium (chromedp)
// and photographs them (-screenshots=DIR), and skips when no Chromium is
// installed. docs/telemetry.md has the measurements.
package telemetry
