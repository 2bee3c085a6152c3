package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release, set at build time:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/node
//
// Without it, the module version from the build information is used
// ("(devel)" for a build from a checkout).
var version string

// Build describes the binary: GET /v1/version and `node version`.
type Build struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
}

func buildInfo() Build {
	b := Build{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
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
		Short: "Print the node binary's version, Go version and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := buildInfo()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "troupe node %s\n", b.Version)
			fmt.Fprintf(out, "  go        %s %s\n", b.Go, b.Platform)
			if b.Commit != "" {
				dirty := ""
				if b.Modified {
					dirty = " (modified)"
				}
				fmt.Fprintf(out, "  commit    %s%s %s\n", b.Commit, dirty, b.Time)
			}
			return nil
		},
	}
}
