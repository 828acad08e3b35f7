package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func testRoot(got *string) *cobra.Command {
	root := Root(&cobra.Command{Use: "t"})
	c := &cobra.Command{Use: "show", Args: NoArgs}
	out := OutputFlag(c, Table, JSON, YAML)
	server := c.Flags().String("server", "default", Env("server", "CLI_TEST_SERVER"))
	c.Flags().String("server-file", "", "file")
	all := c.Flags().Bool("all", false, "all")
	on := c.Flags().Bool("on", true, "on")
	Alias(c.Flags(), "srv", "server")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := FromEnv(cmd.Flags(), map[string]string{"server": "CLI_TEST_SERVER"}); err != nil {
			return err
		}
		*got = out.Format + " " + *server
		if *all || !*on {
			*got += fmt.Sprintf(" all=%v on=%v", *all, *on)
		}
		return out.Print(cmd.OutOrStdout(), map[string]string{"server": *server}, func(w io.Writer) error {
			_, err := w.Write([]byte("TABLE\n"))
			return err
		})
	}
	root.AddCommand(Group(&cobra.Command{Use: "group"}), c)
	return root
}

// TestCommandModel: -o is checked at parse time, a flag beats the environment which beats
// the default, an old flag name works with a note on stderr (not stdout), and the exit
// codes tell usage mistakes from failures.
func TestCommandModel(t *testing.T) {
	var got string
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Execute(context.Background(), testRoot(&got), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run("show", "-o", "yaml"); code != ExitOK || out != "server: default\n" {
		t.Errorf("-o yaml: %d %q", code, out)
	}
	if code, out, _ := run("show"); code != ExitOK || out != "TABLE\n" {
		t.Errorf("default table: %d %q", code, out)
	}
	if code, _, errb := run("show", "-o", "xml"); code != ExitUsage || !strings.Contains(errb, `"xml": use table, json, yaml`) || !strings.Contains(errb, "Run 't show --help' for usage.") {
		t.Errorf("-o xml: %d %q", code, errb)
	}
	t.Setenv("CLI_TEST_SERVER", "from-env")
	if run("show"); got != "table from-env" {
		t.Errorf("env: %q", got)
	}
	if run("show", "--server", "flag"); got != "table flag" {
		t.Errorf("flag over env: %q", got)
	}
	code, out, errb := run("show", "--srv", "old", "-o", "json")
	if code != ExitOK || got != "json old" || strings.Contains(out, "deprecated") || !strings.Contains(errb, "Flag --srv has been deprecated, use --server") {
		t.Errorf("alias: %d %q out %q err %q", code, got, out, errb)
	}
	if code, out, _ := run("show", "--help"); code != ExitOK || strings.Contains(out, "--srv") || !strings.Contains(out, "(env CLI_TEST_SERVER)") {
		t.Errorf("help: %d\n%s", code, out)
	}
	if run("show", "--all", "--on=false", "--server", "x"); got != "table x all=true on=false" {
		t.Errorf("bool flags: %q", got)
	}
	if _, out, _ := run("show", "--help"); !strings.Contains(out, "      --all ") || strings.Contains(out, "[=true|false]") {
		t.Errorf("bool flags in help:\n%s", out)
	}
	if code, out, _ := run("group"); code != ExitOK || !strings.Contains(out, "Usage:") {
		t.Errorf("group without a subcommand: %d %q", code, out)
	}
	if code, _, errb := run("group", "frob"); code != ExitUsage || !strings.Contains(errb, `unknown command "frob" for "t group"`) {
		t.Errorf("unknown subcommand: %d %q", code, errb)
	}
	if code, _, _ := run("show", "extra"); code != ExitUsage {
		t.Errorf("extra argument: %d", code)
	}
}
