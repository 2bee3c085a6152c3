package telemetry

import (
	"time"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
	"github.com/troupe-dev/troupe/transport"
)

// Status is one node's periodic status, as it sent it.
type Status struct {
	Node       actors.NodeName  `json:"node"`
	Seq        uint64           `json:"seq"`
	Time       time.Time        `json:"time"`    // the node's clock when it made the status
	Started    time.Time        `json:"started"` // when the node's telemetry started
	IntervalMS uint32           `json:"interval_ms"`
	CPUPercent float64          `json:"cpu_percent"` // process CPU over the last interval, % of one core
	NumCPU     int              `json:"num_cpu"`
	HeapBytes  uint64           `json:"heap_bytes"`
	MemBytes   uint64           `json:"memory_bytes"` // all the Go runtime holds from the OS, resident or not
	RSSBytes   uint64           `json:"rss_bytes"`    // resident set size (ps, docker stats); 0: not measured
	Goroutines int              `json:"goroutines"`
	DiskFree   uint64           `json:"disk_free_bytes"`  // 0 with DiskTotal 0: not measured
	DiskTotal  uint64           `json:"disk_total_bytes"` //
	Leader     actors.NodeName  `json:"leader"`
	Term       uint64           `json:"term"`
	Protocols  []ProtocolStatus `json:"protocols"`
	Jobs       []Job            `json:"jobs"`
	Size       int              `json:"size"`           // bytes of the status message
	Raft       *RaftView        `json:"raft,omitempty"` // nil when the node runs no raft group
}

// RaftView is a node's view of its raft group, as its status reported it.
type RaftView struct {
	State     string            `json:"state"` // StateLeader, StateFollower, StateCandidate, StatePreCandidate
	Leader    actors.NodeName   `json:"leader"`
	Term      uint64            `json:"term"`
	Commit    uint64            `json:"commit"`
	Applied   uint64            `json:"applied"`
	Voters    []actors.NodeName `json:"voters"`
	Learners  []actors.NodeName `json:"learners"`
	Reachable []actors.NodeName `json:"reachable"`        // the voters it heard from lately, itself included
	Reason    string            `json:"reason,omitempty"` // why it knows no leader: no_quorum or election
	Keys      uint64            `json:"keys"`
	Followers []RaftFollower    `json:"followers,omitempty"` // the leader's progress of the others
}

// RaftFollower is the leader's progress of one follower.
type RaftFollower struct {
	Node   actors.NodeName `json:"node"`
	Match  uint64          `json:"match"`
	Next   uint64          `json:"next"`
	Lag    uint64          `json:"lag"` // the leader's commit minus Match
	State  string          `json:"state"`
	Active bool            `json:"active"`
}

// ProtocolStatus is one protocol of a node's status.
type ProtocolStatus struct {
	Name         actors.ProtocolName `json:"name"`
	MailboxDepth int                 `json:"mailbox_depth"`
	Restarts     int64               `json:"restarts"`
	Stopped      bool                `json:"stopped"`
	// InPerSec counts the messages handled, timer firings left out
	// (TimersPerSec).
	InPerSec       float64 `json:"msgs_in_per_sec"`
	OutPerSec      float64 `json:"msgs_out_per_sec"`
	TimersPerSec   float64 `json:"timers_per_sec"`
	BytesInPerSec  float64 `json:"bytes_in_per_sec"`
	BytesOutPerSec float64 `json:"bytes_out_per_sec"`
	MsgsIn         int64   `json:"msgs_in"` // timer firings included
	MsgsOut        int64   `json:"msgs_out"`
	Timers         int64   `json:"timers"`
	BytesIn        int64   `json:"bytes_in"`
	BytesOut       int64   `json:"bytes_out"`
	Unhandled      int64   `json:"unhandled"`
	// Channels is the protocol's traffic by channel since the node
	// started, for the channels it used, in channel order.
	Channels []ChannelStatus `json:"channels,omitempty"`
}

// ChannelStatus is one protocol's traffic on one channel, as its node's
// status reported it (actors.ChannelStats).
type ChannelStatus struct {
	Channel  actors.Channel `json:"channel"`   // "stream", "datagram" or "gossip"
	MsgsIn   int64          `json:"msgs_in"`   // handed to the protocol
	MsgsOut  int64          `json:"msgs_out"`  // sent; a broadcast counts once
	BytesIn  int64          `json:"bytes_in"`  //
	BytesOut int64          `json:"bytes_out"` //
	Dropped  int64          `json:"dropped"`   // failed sends and pruned broadcasts
}

// channelsFromPB converts the channels of a status from another node,
// leaving out those not named by a known channel.
func channelsFromPB(chs []*pb.TelemetryChannelStatus) []ChannelStatus {
	var out []ChannelStatus
	for _, c := range chs {
		ch, err := transport.ParseChannel(c.Channel)
		if err != nil {
			continue
		}
		out = append(out, ChannelStatus{Channel: ch, MsgsIn: c.MsgsIn, MsgsOut: c.MsgsOut,
			BytesIn: c.BytesIn, BytesOut: c.BytesOut, Dropped: c.Dropped})
	}
	return out
}

// Job is a job as its contact reported it.
type Job struct {
	ID         string          `json:"id"`
	Contact    actors.NodeName `json:"contact"`
	State      string          `json:"state"`
	PartsTotal int             `json:"parts_total"`
	PartsDone  int             `json:"parts_done"`
	Error      string          `json:"error,omitempty"`
	Submitted  time.Time       `json:"submitted"`
	Ended      time.Time       `json:"ended,omitzero"`
	// PartsByNode counts the part results by the node that ran them.
	PartsByNode map[actors.NodeName]int `json:"parts_by_node,omitempty"`
	// Result is a succeeded job's result (JSON text), cut to
	// MaxResultPreview bytes (ResultCut tells); the whole one is at
	// GET /v1/jobs/{id} on the contact.
	Result    string `json:"result,omitempty"`
	ResultCut bool   `json:"result_cut,omitempty"`
}

// MaxResultPreview bounds Job.Result.
const MaxResultPreview = 512

// Over reports whether the job has ended.
func (j Job) Over() bool {
	return j.State == "succeeded" || j.State == "failed" || j.State == "cancelled"
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func statusFromPB(m *pb.TelemetryStatus, size int) *Status {
	s := &Status{
		Node: actors.NodeName(m.Node), Seq: m.Seq, Time: unixTime(m.TimeUnixNano), Started: unixTime(m.StartedUnixNano),
		IntervalMS: m.IntervalMs, CPUPercent: m.CpuPercent, NumCPU: int(m.NumCpu),
		HeapBytes: m.HeapBytes, MemBytes: m.MemoryBytes, RSSBytes: m.RssBytes, Goroutines: int(m.Goroutines),
		DiskFree: m.DiskFreeBytes, DiskTotal: m.DiskTotalBytes, Leader: actors.NodeName(m.Leader), Term: m.Term,
		Protocols: make([]ProtocolStatus, 0, len(m.Protocols)), Jobs: make([]Job, 0, len(m.Jobs)), Size: size,
	}
	for _, p := range m.Protocols {
		s.Protocols = append(s.Protocols, ProtocolStatus{
			Name: actors.ProtocolName(p.Name), MailboxDepth: int(p.MailboxDepth), Restarts: p.Restarts, Stopped: p.Stopped,
			InPerSec: p.MsgsInPerSec, OutPerSec: p.MsgsOutPerSec, MsgsIn: p.MsgsIn, MsgsOut: p.MsgsOut,
			BytesIn: p.BytesIn, BytesOut: p.BytesOut, Unhandled: p.Unhandled,
			TimersPerSec: p.TimersPerSec, Timers: p.Timers, BytesInPerSec: p.BytesInPerSec, BytesOutPerSec: p.BytesOutPerSec,
			Channels: channelsFromPB(p.Channels),
		})
	}
	if r := m.Raft; r != nil {
		v := &RaftView{State: r.State, Leader: actors.NodeName(r.Leader), Term: r.Term, Commit: r.Commit, Applied: r.Applied,
			Voters: nodeNames(r.Voters), Learners: nodeNames(r.Learners), Reachable: nodeNames(r.Reachable), Reason: r.Reason, Keys: r.Keys}
		for _, f := range r.Followers {
			rf := RaftFollower{Node: actors.NodeName(f.Node), Match: f.Match, Next: f.Next, State: f.State, Active: f.Active}
			if r.Commit > f.Match {
				rf.Lag = r.Commit - f.Match
			}
			v.Followers = append(v.Followers, rf)
		}
		s.Raft = v
	}
	for _, j := range m.Jobs {
		s.Jobs = append(s.Jobs, jobFromPB(actors.NodeName(m.Node), j))
	}
	return s
}

func jobFromPB(contact actors.NodeName, j *pb.TelemetryJob) Job {
	out := Job{ID: j.Id, Contact: contact, State: j.State, PartsTotal: int(j.PartsTotal), PartsDone: int(j.PartsDone),
		Error: j.Error, Submitted: unixTime(j.SubmittedUnixNano), Ended: unixTime(j.EndedUnixNano),
		Result: j.Result, ResultCut: j.ResultCut}
	if len(j.PartsByNode) > 0 {
		out.PartsByNode = map[actors.NodeName]int{}
		for n, c := range j.PartsByNode {
			out.PartsByNode[actors.NodeName(n)] = int(c)
		}
	}
	return out
}

// nodeNames are the node names a status carries, never nil.
func nodeNames(wire []string) []actors.NodeName {
	out := make([]actors.NodeName, len(wire))
	for i, s := range wire {
		out[i] = actors.NodeName(s)
	}
	return out
}

// wireNames are node names as a status carries them.
func wireNames(names []actors.NodeName) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out
}
