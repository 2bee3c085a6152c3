package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Key describes one configuration key.
type Key struct {
	Name    string // section.key, as in the file: "jobs.slots"
	Section string // "jobs"
	Env     string // the environment variable: "TROUPE_JOBS_SLOTS"
	Flag    string // the `node run` flag that sets it ("" for none), without "--"
	// Live: a change applies while the node runs (node config apply,
	// SIGHUP); any other key needs a restart. Keys that can run code or
	// widen access (the exec runtime, the API token, TLS, where the API
	// listens) are never live (DESIGN §7).
	Live bool
	// Secret: its value is never shown (GET /v1/config, node config check).
	Secret bool
	// Path: a file or directory; set in the file, a relative path is
	// relative to the file's directory.
	Path bool
	Type string // string, int, uint, float, bool, duration or list

	index []int // the field's path from Config
}

// EnvPrefix starts every environment variable of a key.
const EnvPrefix = "TROUPE_"

// meta is what the types do not say about a key.
var meta = map[string]struct {
	flag               string
	live, secret, path bool
}{
	"node.name":                     {flag: "name"},
	"node.bind":                     {flag: "bind"},
	"node.advertise":                {flag: "advertise"},
	"node.data_dir":                 {flag: "data-dir", path: true},
	"node.log_level":                {flag: "log-level"},
	"node.log_format":               {flag: "log-format"},
	"membership.gossip":             {flag: "gossip"},
	"membership.join":               {flag: "join"},
	"membership.preset":             {flag: "preset"},
	"membership.gossip_key":         {secret: true},
	"membership.gossip_key_file":    {path: true},
	"membership.accept_gossip_keys": {secret: true},
	"membership.probe_interval":     {},
	"membership.probe_timeout":      {},
	"membership.suspicion_mult":     {},
	"membership.gossip_interval":    {},
	"membership.push_pull_interval": {},
	"election.elector":              {flag: "elector"},
	"election.ok_timeout":           {live: true},
	"election.coordinator_timeout":  {live: true},
	"jobs.slots":                    {flag: "slots", live: true},
	"jobs.prefetch":                 {live: true},
	"jobs.max_steps":                {flag: "max-steps", live: true},
	"jobs.part_timeout":             {flag: "part-timeout", live: true},
	"jobs.max_result_bytes":         {live: true},
	"jobs.max_memory":               {live: true},
	"jobs.max_depth":                {live: true},
	"jobs.http_allow":               {flag: "http-allow", live: true},
	"jobs.exec":                     {flag: "exec"},
	"jobs.exec_cmd":                 {flag: "exec-cmd"},
	"jobs.max_parts":                {live: true},
	"jobs.parts_per_member":         {live: true},
	"jobs.max_script_bytes":         {live: true},
	"jobs.max_input_bytes":          {live: true},
	"jobs.backup":                   {live: true},
	"jobs.retain":                   {live: true},
	"raft.peers":                    {flag: "raft-peers"},
	"raft.join":                     {flag: "raft-join"},
	"raft.force_new_state":          {flag: "force-new-state"},
	"raft.tick_interval":            {},
	"raft.election_ticks":           {},
	"raft.heartbeat_ticks":          {},
	"telemetry.protoactor_metrics":  {flag: "protoactor-metrics"},
	"api.listen":                    {flag: "http"},
	"api.token":                     {secret: true},
	"api.token_file":                {path: true},
	"api.open_paths":                {},
	"api.tls_cert":                  {path: true},
	"api.tls_key":                   {path: true},
	"api.insecure":                  {flag: "insecure-api"},
	"tls.ca":                        {path: true},
	"tls.cert":                      {path: true},
	"tls.key":                       {path: true},

	// The rest of SWIM's timings (membership.Timing).
	"membership.indirect_checks":            {},
	"membership.suspicion_max_timeout_mult": {},
	"membership.awareness_max_multiplier":   {},
	"membership.gossip_nodes":               {},
	"membership.gossip_to_the_dead_time":    {},
	"membership.retransmit_mult":            {},
	"membership.tcp_timeout":                {},
	"membership.dead_node_reclaim_time":     {},
	"membership.reconnect_interval":         {},
	"membership.reconnect_timeout":          {},
	"membership.join_resync":                {},
	"membership.broadcast_queue_limit":      {},
	"membership.broadcast_dedupe_window":    {},
	"membership.broadcast_origins":          {},
}

var (
	keys     []Key          // in file order
	keyIndex map[string]int // name → position in keys
	sections []string       // in file order
)

var durationType = reflect.TypeFor[time.Duration]()

func init() {
	keyIndex = map[string]int{}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		if !sf.IsExported() {
			continue
		}
		section := sf.Tag.Get("yaml")
		sections = append(sections, section)
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			name := section + "." + kf.Tag.Get("yaml")
			m, ok := meta[name]
			if !ok {
				panic(fmt.Sprintf("config: key %s has no entry in meta", name))
			}
			k := Key{Name: name, Section: section, Flag: m.flag, Live: m.live, Secret: m.secret, Path: m.path,
				Env:   EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, ".", "_")),
				Type:  typeName(kf.Type),
				index: []int{i, j}}
			keyIndex[name] = len(keys)
			keys = append(keys, k)
		}
	}
	if len(keys) != len(meta) {
		panic("config: meta names keys that Config does not have")
	}
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int:
		return "int"
	case reflect.Uint64:
		return "uint"
	case reflect.Float64:
		return "float"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		return "list"
	}
	panic("config: unsupported field type " + t.String())
}

// Keys lists every key, in the order of the file's sections.
func Keys() []Key { return slices.Clone(keys) }

// Sections lists the sections, in the file's order.
func Sections() []string { return slices.Clone(sections) }

// Lookup finds a key by name ("jobs.slots").
func Lookup(name string) (Key, bool) {
	i, ok := keyIndex[name]
	if !ok {
		return Key{}, false
	}
	return keys[i], true
}

// keysOf lists the key names of a section, for error messages.
func keysOf(section string) string {
	var out []string
	for _, k := range keys {
		if k.Section == section {
			out = append(out, strings.TrimPrefix(k.Name, section+"."))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// field is the value of key k in c.
func (c *Config) field(k Key) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(k.index)
}

// Value returns the value of a key: a string, int, uint64, float64, bool,
// time.Duration or []string.
func (c *Config) Value(name string) (any, bool) {
	k, ok := Lookup(name)
	if !ok {
		return nil, false
	}
	return c.field(k).Interface(), true
}
