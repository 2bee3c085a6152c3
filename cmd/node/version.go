package main

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version, commit and built describe the binary when its build
// information does not (or, for version, to name a release), set at build
// time:
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD) -X main.built=$(date -u +%FT%TZ)" ./cmd/node
//
// Without them, version is the module version from the build information
// ("(devel)" for a build from a checkout) and commit its vcs.revision,
// which go build records in a git checkout unless -buildvcs=false (or
// GOFLAGS=-buildvcs=false) says not to; go run records none, nor does go
// build in a git worktree (its .git is a file). built is empty without
// the flag: the build information has the commit's time, not the build's.
var version, commit, built string

// noVCS says why a binary has no commit, and how to give it one.
const noVCS = "unknown: the binary carries no VCS information (go run, -buildvcs=false, or a git worktree); " +
	`build with -ldflags "-X main.commit=$(git rev-parse HEAD)"`

// Build describes the binary: GET /v1/version and `node version`.
type Build struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"time,omitempty"` // the commit's (vcs.time)
	Modified bool   `json:"modified,omitempty"`
	Built    string `json:"built,omitempty"` // the build's (-X main.built)
	Module   string `json:"-"`               // the module's path and version, from the build information
}

func buildInfo() Build {
	b := Build{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Commit: commit, Built: built}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
		b.Module = strings.TrimSpace(info.Main.Path + " " + info.Main.Version)
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(unknown)"
	}
	return b
}

func versionString() string {
	b := buildInfo()
	s := b.Version
	if b.Commit != "" {
		s += " " + b.Commit[:min(12, len(b.Commit))]
		if b.Modified {
			s += "+dirty"
		}
	}
	return s
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the node binary's version, module, Go version, commit and build time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := buildInfo()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "troupe node %s\n", b.Version)
			if b.Module != "" {
				fmt.Fprintf(out, "  module    %s\n", b.Module)
			}
			fmt.Fprintf(out, "  go        %s %s\n", b.Go, b.Platform)
			switch {
			case b.Commit == "":
				fmt.Fprintf(out, "  commit    %s\n", noVCS)
			case b.Modified:
				fmt.Fprintf(out, "  commit    %s (with uncommitted changes)\n", b.Commit)
			default:
				fmt.Fprintf(out, "  commit    %s\n", b.Commit)
			}
			if b.Time != "" {
				fmt.Fprintf(out, "  committed %s\n", b.Time)
			}
			fmt.Fprintf(out, "  built     %s\n", cmp.Or(b.Built, `unknown (build with -ldflags "-X main.built=$(date -u +%FT%TZ)")`))
			return nil
		},
	}
}
