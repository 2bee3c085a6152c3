package main

import (
	"net"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/config"
)

// TestBenchNodesPassNodeRunsAPICheck: the arguments a bench container runs
// `node run` with load as a configuration, and its API, served beyond
// loopback without a token, says so with api.insecure (--insecure-api), as
// node run demands.
func TestBenchNodesPassNodeRunsAPICheck(t *testing.T) {
	keyOf := map[string]string{}
	for _, k := range config.Keys() {
		if k.Flag != "" {
			keyOf[k.Flag] = k.Name
		}
	}
	for _, join := range []bool{false, true} {
		args := benchNodeArgs("node-2", join)
		if args[0] != "run" {
			t.Fatalf("args %v do not start with run", args)
		}
		flags := map[string]string{}
		for i := 1; i < len(args); i++ {
			flag, ok := strings.CutPrefix(args[i], "--")
			if !ok {
				t.Fatalf("%q in %v is no flag", args[i], args)
			}
			key, ok := keyOf[flag]
			if !ok {
				t.Fatalf("--%s sets no configuration key", flag)
			}
			value := "true" // a bool flag
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				value = args[i+1]
				i++
			}
			flags[key] = value
		}
		cfg, err := config.Load(config.Sources{Flags: flags})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		host, _, err := net.SplitHostPort(cfg.API.Listen)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); cfg.APIToken() == "" && (ip == nil || !ip.IsLoopback()) && !cfg.API.Insecure {
			t.Errorf("%v: the API listens on %s without a token and without --insecure-api; node run refuses to start", args, cfg.API.Listen)
		}
	}
}
