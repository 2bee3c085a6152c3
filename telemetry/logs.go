package telemetry

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// LogBuffer keeps the most recent log lines of each node whose logger
// writes into it, for the telemetry protocol to hand to any node that asks.
// It is a zerolog writer:
//
//	logs := telemetry.NewLogBuffer(1000)
//	logger := zerolog.New(zerolog.MultiLevelWriter(os.Stderr, logs))
//
// Lines are zerolog JSON; each is filed under the value of its "node" field
// (which every node's logger adds), so one buffer serves every node of an
// in-process cluster. Lines without a node field belong to the process and
// are shown with the lines of every node.
//
// A LogBuffer is safe for concurrent use.
type LogBuffer struct {
	perNode int
	mu      sync.Mutex
	seq     uint64
	nodes   map[string]*lineRing
}

type logLine struct {
	seq   uint64
	level zerolog.Level
	text  []byte
}

// lineRing holds the last cap(lines) lines of one node.
type lineRing struct {
	lines []logLine
	next  int // where the next line goes once the ring is full
}

func (r *lineRing) add(l logLine, max int) {
	if len(r.lines) < max {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % max
}

// ordered returns the lines oldest first.
func (r *lineRing) ordered() []logLine {
	return append(slices.Clone(r.lines[r.next:]), r.lines[:r.next]...)
}

// NewLogBuffer keeps the last perNode lines of each node (at least 1).
func NewLogBuffer(perNode int) *LogBuffer {
	return &LogBuffer{perNode: max(perNode, 1), nodes: map[string]*lineRing{}}
}

// Write files one zerolog line; its level is read from its "level" field.
func (b *LogBuffer) Write(p []byte) (int, error) {
	level := zerolog.NoLevel
	if v := field(p, "level"); v != "" {
		if l, err := zerolog.ParseLevel(v); err == nil {
			level = l
		}
	}
	return b.WriteLevel(level, p)
}

// WriteLevel files one zerolog line of the given level (zerolog's
// LevelWriter, used by zerolog.MultiLevelWriter).
func (b *LogBuffer) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	node := field(p, "node")
	text := bytes.TrimRight(p, "\n")
	l := logLine{level: level, text: bytes.Clone(text)}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	l.seq = b.seq
	r := b.nodes[node]
	if r == nil {
		r = &lineRing{}
		b.nodes[node] = r
	}
	r.add(l, b.perNode)
	return len(p), nil
}

// Lines returns up to limit of node's most recent lines (with the
// process's own), oldest first, of level min or above (zerolog.TraceLevel
// for all), totalling at most maxBytes; truncated tells whether older
// matching lines were left out for the byte limit.
func (b *LogBuffer) Lines(node string, limit int, min zerolog.Level, maxBytes int) (lines [][]byte, truncated bool) {
	lines, truncated, _ = b.Query(node, LogFilter{Limit: limit, MinLevel: min, MaxBytes: maxBytes})
	return lines, truncated
}

// LogFilter selects lines for [LogBuffer.Query].
type LogFilter struct {
	Limit    int           // at most this many lines, the newest
	MinLevel zerolog.Level // lines of this level or above (zerolog.TraceLevel for all)
	MaxBytes int           // totalling at most this many bytes
	Search   string        // lines holding this text, ignoring case ("" for all)
	Since    uint64        // lines after this sequence number (0 for all)
}

// Query is Lines with a search and a cursor: it also returns last, the
// sequence number of the newest line the buffer holds (of any node), to
// pass as Since to get only the lines written after.
func (b *LogBuffer) Query(node string, f LogFilter) (lines [][]byte, truncated bool, last uint64) {
	b.mu.Lock()
	var all []logLine
	for _, name := range []string{node, ""} {
		if r := b.nodes[name]; r != nil {
			all = append(all, r.ordered()...)
		}
		if node == "" {
			break
		}
	}
	last = b.seq
	b.mu.Unlock()
	slices.SortFunc(all, func(a, c logLine) int { return cmp.Compare(a.seq, c.seq) })
	search := []byte(strings.ToLower(f.Search))
	size := 0
	for i := len(all) - 1; i >= 0 && len(lines) < f.Limit; i-- {
		l := all[i]
		if l.seq <= f.Since {
			break
		}
		if l.level != zerolog.NoLevel && l.level < f.MinLevel {
			continue
		}
		if len(search) > 0 && !bytes.Contains(bytes.ToLower(l.text), search) {
			continue
		}
		if size+len(l.text) > f.MaxBytes {
			truncated = true
			break
		}
		size += len(l.text)
		lines = append(lines, l.text)
	}
	slices.Reverse(lines)
	return lines, truncated, last
}

// field finds the string value of a top-level field of a zerolog JSON line
// by its first occurrence, which for the context fields zerolog writes
// first ("level", "node") is the field itself. It does not unescape: node
// names and levels need no escaping.
func field(line []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
