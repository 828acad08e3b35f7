package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats.
const (
	Table = "table"
	JSON  = "json"
	YAML  = "yaml"
	JSONL = "jsonl" // one JSON object a line: for streams and lists that are read as one
)

// Output is the -o/--output flag: one of the formats a command allows, checked when the
// flag is parsed, so `-o xml` is a usage error before anything is asked of the engine.
type Output struct {
	Format  string
	allowed []string
}

func (o *Output) String() string { return o.Format }
func (o *Output) Type() string   { return "format" }

// Set checks v against the allowed formats.
func (o *Output) Set(v string) error {
	if !slices.Contains(o.allowed, v) {
		return fmt.Errorf("%q: use %s", v, strings.Join(o.allowed, ", "))
	}
	o.Format = v
	return nil
}

// OutputFlag adds -o/--output to c with these formats, the first one the default, and
// completes its values.
func OutputFlag(c *cobra.Command, formats ...string) *Output {
	o := &Output{Format: formats[0], allowed: formats}
	c.Flags().VarP(o, "output", "o", "output format: "+strings.Join(formats, ", "))
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// Print writes v as JSON (indented), YAML, or one JSON line per element of a slice
// (jsonl); the table format is table's, which must be non-nil if the flag allows it.
func (o *Output) Print(w io.Writer, v any, table func(io.Writer) error) error {
	switch o.Format {
	case Table:
		return table(w)
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case JSONL:
		return WriteJSONL(w, v)
	}
	return WriteJSON(w, v)
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteJSONL writes each element of the slice v as one line of JSON (v itself if it is not
// a slice).
func WriteJSONL(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var items []json.RawMessage
	if json.Unmarshal(b, &items) != nil {
		items = []json.RawMessage{b}
	}
	for _, it := range items {
		if _, err := fmt.Fprintf(w, "%s\n", it); err != nil {
			return err
		}
	}
	return nil
}
