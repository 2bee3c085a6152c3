package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sources are the layers of a node's configuration. Each overrides the one
// before it: the defaults, then the file, then the environment, then the
// flags.
type Sources struct {
	// File is the path of the YAML file; "" for none.
	File string
	// Data, when not nil, is the file's content (node config apply sends
	// it); File then only names it in errors, and its directory resolves
	// relative paths.
	Data []byte
	// Env holds "NAME=value" pairs (os.Environ()). Variables named
	// TROUPE_<SECTION>_<KEY> set keys; lists are comma-separated. Other
	// variables are ignored, except TROUPE_<SECTION>_... names of no key,
	// which are errors.
	Env []string
	// Flags maps key names to values as text (lists comma-separated): the
	// flags given on the command line.
	Flags map[string]string
}

// Error is a problem with one key (or a section, or the file).
type Error struct {
	Key    string // "jobs.slots"; a section name; "" for the file as a whole
	Source string // where the bad value comes from: "node.yaml:4", "TROUPE_JOBS_SLOTS", "--slots"
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Key)
	if e.Source != "" {
		if e.Key != "" {
			b.WriteString(" ")
		}
		b.WriteString("(" + e.Source + ")")
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrInvalid wraps every error Load returns: test with errors.Is.
var ErrInvalid = errors.New("config: invalid configuration")

// invalid joins problems into one error that wraps ErrInvalid and each
// *Error.
type invalid []*Error

func (v invalid) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (v invalid) Unwrap() []error {
	out := []error{ErrInvalid}
	for _, e := range v {
		out = append(out, e)
	}
	return out
}

// Load builds and validates a configuration from its sources. A bad key,
// value or file fails with an error naming every offending key, where its
// value came from and what is valid.
func Load(src Sources) (*Config, error) {
	c := Default()
	origin := map[string]string{}
	var errs invalid
	if src.File != "" || src.Data != nil {
		data := src.Data
		if data == nil {
			var err error
			if data, err = os.ReadFile(src.File); err != nil {
				return nil, invalid{{Msg: fmt.Sprintf("reading the configuration file: %v", err)}}
			}
		}
		errs = append(errs, c.decodeFile(data, cmpOr(src.File, "the configuration"), origin)...)
	}
	errs = append(errs, c.applyEnv(src.Env, origin)...)
	names := make([]string, 0, len(src.Flags))
	for name := range src.Flags {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		k, ok := Lookup(name)
		if !ok {
			errs = append(errs, &Error{Key: name, Msg: "not a configuration key"})
			continue
		}
		where := "--" + k.Flag
		if k.Flag == "" {
			where = "flag"
		}
		if err := setText(c.field(k), src.Flags[name]); err != nil {
			errs = append(errs, &Error{Key: name, Source: where, Msg: err.Error()})
			continue
		}
		origin[name] = where
	}
	if c.Node.Name == "" {
		c.Node.Name, _ = os.Hostname()
	}
	// Validate what decoded, so that one run reports every problem; a
	// key that did not decode keeps its default and passes.
	for _, e := range c.validate() {
		base, _, _ := strings.Cut(e.Key, "[")
		e.Source = origin[base]
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	c.resolveSecrets()
	return &c, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decodeFile applies a YAML file: a mapping of sections, each a mapping of
// keys. Unknown sections and keys are errors naming the valid ones.
func (c *Config) decodeFile(data []byte, name string, origin map[string]string) invalid {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: the defaults
		}
		return invalid{{Source: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil
	}
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d", name, n.Line) }
	if doc.Kind != yaml.MappingNode {
		return invalid{{Source: at(doc), Msg: "the file must be a mapping of sections (" + strings.Join(sections, ", ") + ")"}}
	}
	dir := filepath.Dir(name)
	var errs invalid
	seenSec := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		sk, sv := doc.Content[i], doc.Content[i+1]
		section := sk.Value
		if !slices.Contains(sections, section) {
			errs = append(errs, &Error{Key: section, Source: at(sk), Msg: "unknown section; valid sections: " + strings.Join(sections, ", ")})
			continue
		}
		if seenSec[section] {
			errs = append(errs, &Error{Key: section, Source: at(sk), Msg: "section given twice"})
			continue
		}
		seenSec[section] = true
		if sv.Kind == yaml.ScalarNode && sv.Tag == "!!null" {
			continue // an empty section
		}
		if sv.Kind != yaml.MappingNode {
			errs = append(errs, &Error{Key: section, Source: at(sv), Msg: "must be a mapping of keys (" + keysOf(section) + ")"})
			continue
		}
		seen := map[string]bool{}
		for j := 0; j+1 < len(sv.Content); j += 2 {
			kk, kv := sv.Content[j], sv.Content[j+1]
			name := section + "." + kk.Value
			k, ok := Lookup(name)
			if !ok {
				errs = append(errs, &Error{Key: name, Source: at(kk), Msg: "unknown key; valid keys of " + section + ": " + keysOf(section)})
				continue
			}
			if seen[name] {
				errs = append(errs, &Error{Key: name, Source: at(kk), Msg: "key given twice"})
				continue
			}
			seen[name] = true
			if err := setNode(c.field(k), kv); err != nil {
				errs = append(errs, &Error{Key: name, Source: at(kv), Msg: err.Error()})
				continue
			}
			if k.Path {
				if s := c.field(k).String(); s != "" && !filepath.IsAbs(s) {
					c.field(k).SetString(filepath.Join(dir, s))
				}
			}
			origin[name] = at(kv)
		}
	}
	return errs
}

// applyEnv applies TROUPE_<SECTION>_<KEY> variables.
func (c *Config) applyEnv(env []string, origin map[string]string) invalid {
	var errs invalid
	byEnv := map[string]Key{}
	for _, k := range keys {
		byEnv[k.Env] = k
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok {
			continue
		}
		k, ok := byEnv[name]
		if !ok {
			for _, s := range sections {
				if strings.HasPrefix(rest, strings.ToUpper(s)+"_") {
					var valid []string
					for _, k := range keys {
						if k.Section == s {
							valid = append(valid, k.Env)
						}
					}
					errs = append(errs, &Error{Source: name, Msg: "not a configuration key; valid for " + s + ": " + strings.Join(valid, ", ")})
				}
			}
			continue
		}
		if err := setText(c.field(k), value); err != nil {
			errs = append(errs, &Error{Key: k.Name, Source: name, Msg: err.Error()})
			continue
		}
		origin[k.Name] = name
	}
	return errs
}

// setNode sets a field from a YAML value.
func setNode(v reflect.Value, n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return errors.New("has no value; remove the line to keep the default")
	}
	if v.Kind() == reflect.Slice {
		switch n.Kind {
		case yaml.SequenceNode:
			out := make([]string, 0, len(n.Content))
			for _, item := range n.Content {
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: a list item must be a plain value", item.Line)
				}
				out = append(out, item.Value)
			}
			v.Set(reflect.ValueOf(out))
			return nil
		case yaml.ScalarNode:
			return setText(v, n.Value)
		}
		return errors.New("must be a list, e.g. [a, b]")
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a single %s value, not a list or mapping", typeName(v.Type()))
	}
	return setText(v, n.Value)
}

// setText sets a field from text (the file's scalars, environment
// variables, flags).
func setText(v reflect.Value, s string) error {
	s = strings.TrimSpace(s)
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration; write a number with a unit, e.g. 500ms, 30s, 2m", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case reflect.Uint64:
		n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a positive integer", s)
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Slice:
		var out []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		v.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
