package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func versionCmd(stdout io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name: "version", ShortUsage: "officepbx version", ShortHelp: "Print the module version and the VCS revision built from.",
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("version takes no arguments")
			}
			fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
			return nil
		},
	}
}

// versionText says which module version and source revision the binary was built from: the
// version is "(devel)" for a build inside the repository, a tag for "go install ...@v1.2.3";
// the revision comes from the VCS stamp Go writes into builds made in a checkout.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "officepbx: no build information in this binary\n"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	s := fmt.Sprintf("officepbx %s\n", version)
	if bi.Main.Path != "" {
		s += fmt.Sprintf("module    %s\n", bi.Main.Path)
	}
	var rev, at, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				modified = " (with uncommitted changes)"
			}
		}
	}
	if rev != "" {
		s += fmt.Sprintf("revision  %s %s%s\n", rev, at, modified)
	}
	return s + fmt.Sprintf("go        %s\n", bi.GoVersion)
}
