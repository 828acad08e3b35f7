package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is what `version` prints: the module version and the VCS revision the binary
// was built from, as the Go toolchain recorded them (debug.ReadBuildInfo).
type Version struct {
	Binary    string `json:"binary"`
	Module    string `json:"module"`
	Version   string `json:"version"`            // v1.2.3 for a tagged module, (devel) for a work tree build
	Revision  string `json:"revision,omitempty"` // vcs.revision: the commit
	Time      string `json:"time,omitempty"`     // vcs.time: the commit's time
	Modified  bool   `json:"modified,omitempty"` // vcs.modified: built from a tree with changes
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// ReadVersion reads the build information of the running binary.
func ReadVersion(binary string) Version {
	v := Version{Binary: binary, Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v Version) table(w io.Writer) error {
	rev := v.Revision
	if rev == "" {
		rev = "unknown (built without VCS information, e.g. -buildvcs=false)"
	} else if v.Modified {
		rev += " (modified)"
	}
	_, err := fmt.Fprintf(w, "%s %s\nmodule:   %s\nrevision: %s\ngo:       %s %s\n", v.Binary, v.Version, v.Module, rev, v.GoVersion, v.Platform)
	return err
}

// VersionCommand is `<binary> version`.
func VersionCommand(binary string) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the module version and VCS revision this binary was built from",
		Args:  NoArgs,
	}
	out := OutputFlag(c, Table, JSON, YAML)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		v := ReadVersion(binary)
		return out.Print(cmd.OutOrStdout(), v, v.table)
	}
	return c
}
