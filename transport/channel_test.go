package transport_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/transport"
)

func TestChannelsAreJSONKeysByName(t *testing.T) {
	in := map[transport.Channel]int{transport.Stream: 1, transport.Datagram: 2, transport.Gossip: 3}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"datagram":2,"gossip":3,"stream":1}` {
		t.Fatalf("JSON %s", b)
	}
	var out map[transport.Channel]int
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[transport.Stream] != 1 || out[transport.Datagram] != 2 || out[transport.Gossip] != 3 {
		t.Fatalf("round trip %v", out)
	}
	if err := json.Unmarshal([]byte(`{"carrier-pigeon":1}`), &out); err == nil || !strings.Contains(err.Error(), "valid: stream, datagram, gossip") {
		t.Fatalf("an unknown channel name: %v", err)
	}
	if _, err := json.Marshal(map[transport.Channel]int{transport.Channel(7): 1}); err == nil {
		t.Fatal("an unknown channel marshalled")
	}
}
