package commit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/troupe-dev/troupe/messages"
)

func TestLogKeepsRecordsAndRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	l, st, err := openLog(dir, true)
	if err != nil || st.gen != 0 || len(st.coord)+len(st.part) != 0 {
		t.Fatalf("a new log: %v, %+v", err, st)
	}
	coord := &pb.TxRecord{State: pb.TxState_TX_STATE_COMMITTED, Mode: pb.TxMode_TX_MODE_TEXTBOOK, Participants: []string{"node-2", "node-3"}}
	part := &pb.TxRecord{State: pb.TxState_TX_STATE_PREPARED, Mode: pb.TxMode_TX_MODE_CONSENSUS, Coordinator: "coordinator-with-a-long-name"}
	if err := l.setGeneration(7); err != nil {
		t.Fatal(err)
	}
	if err := l.write(change{bucketCoord, "node-1.7.1", coord}, change{bucketPart, "c.3.9", part}, change{bucketPart, "c.3.8", part}); err != nil {
		t.Fatal(err)
	}
	if err := l.write(change{bucket: bucketPart, tx: "c.3.8"}); err != nil {
		t.Fatal(err)
	}
	_ = l.close()
	l, st, err = openLog(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.close()
	if st.gen != 7 || len(st.coord) != 1 || len(st.part) != 1 || !proto.Equal(st.coord["node-1.7.1"], coord) || !proto.Equal(st.part["c.3.9"], part) {
		t.Fatalf("reopened: %+v", st)
	}

	// A flipped bit in a record.
	path := filepath.Join(dir, "commit.db")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write: flip the bit in every copy.
	needle := []byte("coordinator-with-a-long-name")
	n := 0
	for i := bytes.Index(file, needle); i >= 0; i = bytes.Index(file, needle) {
		file[i+3] ^= 0x20
		n++
	}
	if n == 0 {
		t.Fatal("the record is not in the file")
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openLog(dir, true); !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(`participant record of "c.3.9" fails its checksum`)) {
		t.Fatalf("a flipped bit: %v, want ErrCorrupt naming the record", err)
	}
	// Not a bbolt file at all.
	if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openLog(dir, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a garbage file: %v, want ErrCorrupt", err)
	}
}

func TestParseID(t *testing.T) {
	for id, want := range map[string]txID{
		"node-1.3.14":              {"node-1", 3, 14},
		"a.b.c.1.2":                {"a.b.c", 1, 2},
		"x.18446744073709551615.0": {"x", 1<<64 - 1, 0},
	} {
		got, ok := parseID(id)
		if !ok || got != want || got.String() != id {
			t.Errorf("parseID(%q) = %+v, %v; want %+v", id, got, ok, want)
		}
	}
	for _, id := range []string{"", "node", "node.1", ".1.2", "n.x.1", "n.1.-2", "n..1"} {
		if got, ok := parseID(id); ok {
			t.Errorf("parseID(%q) = %+v; want refused", id, got)
		}
	}
}

// FuzzParseID: ids come from the network; parsing never panics, and what
// parses prints back as the same id.
func FuzzParseID(f *testing.F) {
	f.Add("node-1.3.14")
	f.Add("..")
	f.Fuzz(func(t *testing.T, id string) {
		if got, ok := parseID(id); ok && got.String() != id {
			if _, again := parseID(got.String()); !again {
				t.Errorf("%q parsed as %+v, which does not parse", id, got)
			}
		}
	})
}

// A commit log deleted or emptied after it was made would start a
// participant with no memory of its votes: it is refused, while a data
// dir that never held one starts a new log.
func TestLogRefusesALostFile(t *testing.T) {
	for _, c := range []struct {
		name string
		lose func(path string) error
	}{
		{"deleted", os.Remove},
		{"truncated to 0 bytes", func(path string) error { return os.Truncate(path, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _, err := openLog(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			prepared := &pb.TxRecord{State: pb.TxState_TX_STATE_PREPARED, Mode: pb.TxMode_TX_MODE_TEXTBOOK, Coordinator: "node-1"}
			if err := errors.Join(l.setGeneration(3), l.write(change{bucketPart, "node-1.1.1", prepared}), l.close()); err != nil {
				t.Fatal(err)
			}
			if err := c.lose(filepath.Join(dir, "commit.db")); err != nil {
				t.Fatal(err)
			}
			l, st, err := openLog(dir, true)
			if err == nil {
				_ = l.close()
				t.Fatalf("opened with generation %d and %d participant records; want ErrMissingState", st.gen, len(st.part))
			}
			if !errors.Is(err, ErrMissingState) || !bytes.Contains([]byte(err.Error()), []byte("commit.db")) {
				t.Fatalf("error %q; want ErrMissingState naming commit.db", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}
