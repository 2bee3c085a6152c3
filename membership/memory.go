package membership

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/transport"
)

// The members file (Config.Memory): the members a node last knew, so that
// a restarted node rejoins them (and raft reaches its voters) without
// waiting for someone to gossip with it.
const (
	// MemoryMaxBytes caps the members file; a larger one is refused.
	MemoryMaxBytes = 1 << 20
	// MemoryMaxMembers caps the members the file may name; a file naming
	// more is refused, and a node that knows more keeps the first ones by
	// name.
	MemoryMaxMembers = 1024
	// memoryVersion is the version of the file's format.
	memoryVersion = 1
	// memoryEvery: the file is written at most once per memoryEvery,
	// with the view at that time (changes in between are coalesced).
	memoryEvery = time.Second
)

// ErrMemory: the members file is unusable (unreadable, too large, not
// JSON of this format, written by another node, or naming an invalid
// member). The node starts as if it remembered no one.
var ErrMemory = errors.New("membership: members file refused")

// Remembered is a member as the members file keeps it.
type Remembered struct {
	Name    actors.NodeName `json:"name"`
	Gossip  string          `json:"gossip"`            // SWIM address, host:port
	Address string          `json:"address,omitempty"` // protoactor remote address, host:port
}

// memoryFile is the members file's JSON.
type memoryFile struct {
	Version int             `json:"version"`
	Node    actors.NodeName `json:"node"` // the node that wrote it
	Members []Remembered    `json:"members"`
}

// LoadMemory reads the members file at path, written by node self. A
// missing file is no memory (nil, nil). Anything else that is wrong with
// it — not a regular file, more than MemoryMaxBytes, not this format,
// written by another node, more than MemoryMaxMembers members, a member
// whose name is not a node name or is self's, a duplicate, an address
// that is not host:port — is an ErrMemory naming the file and the
// problem.
func LoadMemory(path string, self actors.NodeName) ([]Remembered, error) {
	fail := func(format string, args ...any) ([]Remembered, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrMemory, path, fmt.Sprintf(format, args...))
	}
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return fail("%v", err)
	}
	// A FIFO or a device would block or never end: only a regular file.
	if !st.Mode().IsRegular() {
		return fail("is not a regular file (%v)", st.Mode().Type())
	}
	if st.Size() > MemoryMaxBytes {
		return fail("is %d bytes; a members file is at most %d", st.Size(), MemoryMaxBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MemoryMaxBytes+1))
	if err != nil {
		return fail("%v", err)
	}
	if len(data) > MemoryMaxBytes {
		return fail("is more than %d bytes; a members file is at most %d", MemoryMaxBytes, MemoryMaxBytes)
	}
	return parseMemory(path, self, data)
}

// parseMemory decodes and checks the members file's data.
func parseMemory(path string, self actors.NodeName, data []byte) ([]Remembered, error) {
	fail := func(format string, args ...any) ([]Remembered, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrMemory, path, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var mf memoryFile
	if err := dec.Decode(&mf); err != nil {
		return fail(`is not a members file (JSON {"version":1,"node":...,"members":[{"name","gossip","address"}]}): %v`, err)
	}
	if dec.More() {
		return fail("has data after its JSON object")
	}
	if mf.Version != memoryVersion {
		return fail("has version %d; this node reads version %d", mf.Version, memoryVersion)
	}
	if mf.Node != self {
		return fail("was written by node %q; this node is %q (a data dir belongs to one node)", mf.Node, self)
	}
	if len(mf.Members) > MemoryMaxMembers {
		return fail("names %d members; at most %d are allowed", len(mf.Members), MemoryMaxMembers)
	}
	seen := map[actors.NodeName]bool{}
	for i, r := range mf.Members {
		if err := transport.ValidateName("member", r.Name); err != nil {
			return fail("members[%d]: %v", i, err)
		}
		if r.Name == self {
			return fail("members[%d] is this node (%s); the file lists the others", i, self)
		}
		if seen[r.Name] {
			return fail("members[%d]: %s is listed twice", i, r.Name)
		}
		seen[r.Name] = true
		if err := checkAddress("gossip", r.Gossip); err != nil {
			return fail("members[%d] (%s): %v", i, r.Name, err)
		}
		if r.Address != "" {
			if err := checkAddress("address", r.Address); err != nil {
				return fail("members[%d] (%s): %v", i, r.Name, err)
			}
		}
	}
	return mf.Members, nil
}

// checkAddress: host:port with a host and a port 1-65535.
func checkAddress(field, addr string) error {
	if _, _, err := splitHostPort(field, addr, false); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "membership: "))
	}
	return nil
}

// encodeMemory is the members file of node self listing members.
func encodeMemory(self actors.NodeName, members []Remembered) ([]byte, error) {
	if members == nil {
		members = []Remembered{}
	}
	b, err := json.MarshalIndent(memoryFile{Version: memoryVersion, Node: self, Members: members}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// SaveMemory writes the members file atomically: a temporary file in the
// same directory, synced, renamed over path, and the directory synced. A
// crash leaves the old file or the new one, never a part.
func SaveMemory(path string, self actors.NodeName, members []Remembered) error {
	data, err := encodeMemory(self, members)
	if err != nil {
		return err
	}
	return writeAtomic(path, data)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// loadMemory loads Config.Memory at start. A refused file is logged and
// forgotten: the node starts as if it remembered no one, and the file is
// replaced by the view at the next change.
func (m *Membership) loadMemory() {
	if m.cfg.Memory == "" {
		return
	}
	rs, err := LoadMemory(m.cfg.Memory, m.cfg.Name)
	if err != nil {
		m.log.Warn().Err(err).Str("file", m.cfg.Memory).
			Msg("refusing the members file; starting without remembered members (the file is rewritten with the current view)")
		return
	}
	m.remembered = rs
	if len(rs) > 0 {
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = string(r.Name)
		}
		m.log.Info().Str("file", m.cfg.Memory).Strs("members", names).Msg("remembered members loaded")
	}
}

// Remembered returns the members read from Config.Memory at start (none
// when there is no file or it was refused).
func (m *Membership) Remembered() []Remembered { return slices.Clone(m.remembered) }

// memoryChanged wakes the writer of the members file, under mu.
func (m *Membership) memoryChangedLocked() {
	if m.cfg.Memory == "" {
		return
	}
	select {
	case m.memWake <- struct{}{}:
	default:
	}
}

// remember writes the members file when the view changes, at most once
// per memoryEvery, and once more when the membership shuts down.
func (m *Membership) remember() {
	defer m.wg.Done()
	var last []byte
	failing := false
	save := func() {
		data, err := encodeMemory(m.cfg.Name, m.toRemember())
		if err == nil && bytes.Equal(data, last) {
			return
		}
		if err == nil {
			err = writeAtomic(m.cfg.Memory, data)
		}
		switch {
		case err != nil && !failing:
			failing = true
			m.log.Warn().Err(err).Str("file", m.cfg.Memory).Msg("cannot write the members file; a restart will rejoin through the seeds only")
		case err == nil:
			failing = false
			last = data
		}
	}
	for {
		select {
		case <-m.memWake:
		case <-m.done:
			save()
			return
		}
		save()
		select {
		case <-time.After(memoryEvery):
		case <-m.done:
			save()
			return
		}
	}
}

// toRemember is what the members file keeps of the view: every member but
// this node, except those that left and those failed longer than
// ReconnectTimeout ago, by name, at most MemoryMaxMembers.
func (m *Membership) toRemember() []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Remembered
	for name, mem := range m.view {
		if name == m.self.Name || mem.Gossip == "" || mem.State == Left {
			continue
		}
		if mem.State == Failed && time.Since(m.failedAt[name]) >= m.reconnectFor {
			continue
		}
		if transport.ValidateName("member", name) != nil {
			continue
		}
		out = append(out, Remembered{Name: name, Gossip: mem.Gossip, Address: mem.Address})
	}
	slices.SortFunc(out, func(a, b Remembered) int { return cmp.Compare(a.Name, b.Name) })
	if len(out) > MemoryMaxMembers {
		out = out[:MemoryMaxMembers]
	}
	return out
}

// rememberedAddrs are the remembered gossip addresses other than this
// node's own.
func (m *Membership) rememberedAddrs() []string {
	var out []string
	for _, r := range m.remembered {
		if r.Gossip != m.self.Gossip && !slices.Contains(out, r.Gossip) {
			out = append(out, r.Gossip)
		}
	}
	return out
}

// othersLive: the view holds a live member other than this node.
func (m *Membership) othersLive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, mem := range m.view {
		if name != m.self.Name && (mem.State == Alive || mem.State == Suspect) {
			return true
		}
	}
	return false
}

// joinAtOnce bounds the joins joinEach runs at once.
const joinAtOnce = 16

// joinEach joins through each address on its own, up to joinAtOnce at
// once, so that one that is gone (a TCP timeout) does not hold up the
// others.
func (m *Membership) joinEach(addrs []string) (int, error) {
	var wg sync.WaitGroup
	var n atomic.Int64
	errs := make([]error, len(addrs))
	slots := make(chan struct{}, joinAtOnce)
	for i, a := range addrs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			k, err := m.ml.Join([]string{a})
			n.Add(int64(k))
			errs[i] = err
		}()
	}
	wg.Wait()
	return int(n.Load()), errors.Join(errs...)
}

// rejoinRemembered joins through the remembered members in the
// background, retrying with Retry's backoff until one answers, another
// member is live in the view (someone joined through this node), the
// membership shuts down or ReconnectTimeout passes. A node without seeds
// starts at once, as it would without a members file.
func (m *Membership) rejoinRemembered() {
	addrs := m.rememberedAddrs()
	if len(addrs) == 0 {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r := m.cfg.Retry.withDefaults()
		wait := r.Backoff
		start := time.Now()
		for attempt := 1; ; attempt++ {
			if m.othersLive() {
				return
			}
			n, err := m.joinEach(addrs)
			if cerr := m.takeConflict(); cerr != nil {
				m.log.Error().Err(cerr).Msg("joining through the remembered members")
			}
			if n > 0 {
				m.log.Info().Int("reached", n).Int("attempts", attempt).Dur("took", time.Since(start)).Msg("joined through remembered members")
				m.resyncLater(addrs)
				return
			}
			if attempt == 1 {
				m.log.Info().Err(err).Strs("members", addrs).Msg("no remembered member answered; trying again in the background")
			}
			if time.Since(start) > m.reconnectFor {
				m.log.Warn().Strs("members", addrs).Dur("for", m.reconnectFor).Msg("no remembered member answered; giving up on them")
				return
			}
			select {
			case <-time.After(wait):
			case <-m.done:
				return
			}
			wait = min(2*wait, r.MaxBackoff)
		}
	}()
}
