package telemetry

import (
	"time"

	pb "github.com/troupe-dev/troupe/messages"
)

// Status is one node's periodic status, as it sent it.
type Status struct {
	Node       string           `json:"node"`
	Seq        uint64           `json:"seq"`
	Time       time.Time        `json:"time"`    // the node's clock when it made the status
	Started    time.Time        `json:"started"` // when the node's telemetry started
	IntervalMS uint32           `json:"interval_ms"`
	CPUPercent float64          `json:"cpu_percent"` // process CPU over the last interval, % of one core
	NumCPU     int              `json:"num_cpu"`
	HeapBytes  uint64           `json:"heap_bytes"`
	MemBytes   uint64           `json:"memory_bytes"`
	Goroutines int              `json:"goroutines"`
	DiskFree   uint64           `json:"disk_free_bytes"`  // 0 with DiskTotal 0: not measured
	DiskTotal  uint64           `json:"disk_total_bytes"` //
	Leader     string           `json:"leader"`
	Term       uint64           `json:"term"`
	Protocols  []ProtocolStatus `json:"protocols"`
	Jobs       []Job            `json:"jobs"`
	Size       int              `json:"size"` // bytes of the status message
}

// ProtocolStatus is one protocol of a node's status.
type ProtocolStatus struct {
	Name         string  `json:"name"`
	MailboxDepth int     `json:"mailbox_depth"`
	Restarts     int64   `json:"restarts"`
	Stopped      bool    `json:"stopped"`
	InPerSec     float64 `json:"msgs_in_per_sec"`
	OutPerSec    float64 `json:"msgs_out_per_sec"`
	MsgsIn       int64   `json:"msgs_in"`
	MsgsOut      int64   `json:"msgs_out"`
	BytesIn      int64   `json:"bytes_in"`
	BytesOut     int64   `json:"bytes_out"`
	Unhandled    int64   `json:"unhandled"`
}

// Job is a job as its contact reported it.
type Job struct {
	ID         string    `json:"id"`
	Contact    string    `json:"contact"`
	State      string    `json:"state"`
	PartsTotal int       `json:"parts_total"`
	PartsDone  int       `json:"parts_done"`
	Error      string    `json:"error,omitempty"`
	Submitted  time.Time `json:"submitted"`
	Ended      time.Time `json:"ended,omitzero"`
}

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
		Node: m.Node, Seq: m.Seq, Time: unixTime(m.TimeUnixNano), Started: unixTime(m.StartedUnixNano),
		IntervalMS: m.IntervalMs, CPUPercent: m.CpuPercent, NumCPU: int(m.NumCpu),
		HeapBytes: m.HeapBytes, MemBytes: m.MemoryBytes, Goroutines: int(m.Goroutines),
		DiskFree: m.DiskFreeBytes, DiskTotal: m.DiskTotalBytes, Leader: m.Leader, Term: m.Term,
		Protocols: make([]ProtocolStatus, 0, len(m.Protocols)), Jobs: make([]Job, 0, len(m.Jobs)), Size: size,
	}
	for _, p := range m.Protocols {
		s.Protocols = append(s.Protocols, ProtocolStatus{
			Name: p.Name, MailboxDepth: int(p.MailboxDepth), Restarts: p.Restarts, Stopped: p.Stopped,
			InPerSec: p.MsgsInPerSec, OutPerSec: p.MsgsOutPerSec, MsgsIn: p.MsgsIn, MsgsOut: p.MsgsOut,
			BytesIn: p.BytesIn, BytesOut: p.BytesOut, Unhandled: p.Unhandled,
		})
	}
	for _, j := range m.Jobs {
		s.Jobs = append(s.Jobs, jobFromPB(m.Node, j))
	}
	return s
}

func jobFromPB(contact string, j *pb.TelemetryJob) Job {
	return Job{ID: j.Id, Contact: contact, State: j.State, PartsTotal: int(j.PartsTotal), PartsDone: int(j.PartsDone),
		Error: j.Error, Submitted: unixTime(j.SubmittedUnixNano), Ended: unixTime(j.EndedUnixNano)}
}
