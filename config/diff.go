package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Change is a key whose value differs between two configurations.
type Change struct {
	Key      Key
	Old, New string // the values as text; "(secret)" for secrets
}

// Changes lists the keys whose values differ from old to next, in the
// file's order. A secret read from a file (api.token_file,
// membership.gossip_key_file) counts as changed when the file's content
// changed, under api.token and membership.gossip_key.
func Changes(old, next *Config) []Change {
	var out []Change
	for _, k := range keys {
		ov, nv := old.field(k).Interface(), next.field(k).Interface()
		same := reflect.DeepEqual(ov, nv) || isEmpty(ov) && isEmpty(nv)
		switch k.Name {
		case "api.token":
			same = old.token == next.token
		case "membership.gossip_key":
			same = bytes.Equal(old.gossipKey, next.gossipKey)
		}
		if same {
			continue
		}
		ch := Change{Key: k, Old: text(ov), New: text(nv)}
		if k.Secret {
			ch.Old, ch.New = "(secret)", "(secret)"
		}
		out = append(out, ch)
	}
	return out
}

func isEmpty(v any) bool {
	s, ok := v.([]string)
	return ok && len(s) == 0
}

func text(v any) string {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return show(v)
}

// Map is the configuration as section → key → value, with durations as
// text ("30s") and secrets, when redact is set, as "(secret)" (or "" when
// not set): the body of GET /v1/config.
func (c *Config) Map(redact bool) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, k := range keys {
		sec := out[k.Section]
		if sec == nil {
			sec = map[string]any{}
			out[k.Section] = sec
		}
		v := c.field(k).Interface()
		switch x := v.(type) {
		case time.Duration:
			v = x.String()
		case []string:
			if x == nil {
				v = []string{}
			}
		}
		if redact && k.Secret {
			switch x := v.(type) {
			case string:
				if x != "" {
					v = "(secret)"
				}
			case []string:
				hidden := make([]string, len(x))
				for i := range hidden {
					hidden[i] = "(secret)"
				}
				v = hidden
			}
		}
		sec[k.Name[len(k.Section)+1:]] = v
	}
	return out
}

// YAML renders the configuration as a file Load reads back (with redact,
// secrets are "(secret)" and it does not).
func (c *Config) YAML(redact bool) ([]byte, error) {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	m := c.Map(redact)
	for _, s := range sections {
		sec := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range keys {
			if k.Section != s {
				continue
			}
			name := k.Name[len(s)+1:]
			var v yaml.Node
			if err := v.Encode(m[s][name]); err != nil {
				return nil, err
			}
			sec.Content = append(sec.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, &v)
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s}, sec)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ErrRestart wraps the error of RunTimeChanges when a key that needs a
// restart changed.
var ErrRestart = errors.New("config: needs a restart")

// RunTimeChanges lists the changes from cur to next when every one is
// live, and otherwise refuses them all: the error wraps ErrRestart and says
// of each restart-only key that it "cannot change at run time", with its
// old and new value (secrets hidden). A token or token file left out of
// next, while cur has one, is such a change: it never turns
// authentication off on a running node.
func RunTimeChanges(cur, next *Config) ([]Change, error) {
	changes := Changes(cur, next)
	var refused []string
	for _, ch := range changes {
		if !ch.Key.Live {
			refused = append(refused, fmt.Sprintf("%s cannot change at run time; restart the node with the new file (it changes %s → %s)",
				ch.Key.Name, ch.Old, ch.New))
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrRestart, strings.Join(refused, "; "))
	}
	return changes, nil
}
