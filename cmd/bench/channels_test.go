package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// TestChannelsSmall runs the channels bench briefly on 3 loopback nodes:
// it prints a row per channel and the contract's last line, every channel
// delivered something, and the stream and datagram rows lost nothing
// counted against them beyond what the table says.
func TestChannelsSmall(t *testing.T) {
	actortest.SkipRemoteUnderRace(t)
	var out bytes.Buffer
	cmd := channelsCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--sizes", "64", "--duration", "300ms", "--broadcast-nodes", "4"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("channels: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	m := regexp.MustCompile(`^stream_msgs_per_s=(\d+) datagram_msgs_per_s=(\d+) gossip_msgs_per_s=(\d+) stream_bytes_per_msg=(\d+) datagram_bytes_per_msg=(\d+) gossip_bytes_per_msg=(\d+) flooding_bytes_per_delivery=(\d+) plumtree_bytes_per_delivery=(\d+) rumor_bytes_per_delivery=(\d+)$`).FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line %q does not follow the contract", lines[len(lines)-1])
	}
	for i, name := range []string{"stream_msgs_per_s", "datagram_msgs_per_s", "gossip_msgs_per_s", "stream_bytes_per_msg", "datagram_bytes_per_msg", "gossip_bytes_per_msg",
		"flooding_bytes_per_delivery", "plumtree_bytes_per_delivery", "rumor_bytes_per_delivery"} {
		if v, _ := strconv.Atoi(m[i+1]); v <= 0 {
			t.Errorf("%s=%d: every channel delivers, and costs bytes", name, v)
		}
	}
	// A 64-byte payload costs at least its bytes on every channel.
	for i := 4; i <= 6; i++ {
		if v, _ := strconv.Atoi(m[i]); v < 64 {
			t.Errorf("%d bytes per delivered message of 64 bytes of payload", v)
		}
	}
	for _, ch := range []string{"stream", "datagram", "gossip"} {
		if !regexp.MustCompile(`(?m)^\s+` + ch + `\s+64\s`).MatchString(out.String()) {
			t.Errorf("no %s row in:\n%s", ch, out.String())
		}
	}
	for _, p := range []string{"broadcast", "plumtree", "rumor"} {
		if !regexp.MustCompile(`(?m)^\s+` + p + `\s+\S+`).MatchString(out.String()) {
			t.Errorf("no %s row in:\n%s", p, out.String())
		}
	}
}
