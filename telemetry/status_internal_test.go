package telemetry

import (
	"testing"

	"github.com/troupe-dev/troupe/actors"
	pb "github.com/troupe-dev/troupe/messages"
)

// A peer's status names channels as text: names that are no channel's are
// left out, the rest kept in order with their counts.
func TestStatusKeepsOnlyKnownChannels(t *testing.T) {
	m := &pb.TelemetryStatus{Node: "node-2", Protocols: []*pb.TelemetryProtocolStatus{{Name: "p", Channels: []*pb.TelemetryChannelStatus{
		{Channel: "stream", MsgsOut: 3, BytesOut: 300},
		{Channel: "<script>alert(1)</script>", MsgsOut: 1},
		{Channel: "", MsgsIn: 1},
		{Channel: "gossip", MsgsIn: 2, BytesIn: 40, Dropped: 1},
	}}}}
	got := statusFromPB(m, 0).Protocols[0].Channels
	want := []ChannelStatus{
		{Channel: actors.Stream, MsgsOut: 3, BytesOut: 300},
		{Channel: actors.Gossip, MsgsIn: 2, BytesIn: 40, Dropped: 1},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("channels %+v, want %+v", got, want)
	}
}
