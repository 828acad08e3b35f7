package guard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFileGood(t *testing.T) {
	c, err := LoadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimits[0].Burst != 2 || c.RateLimits[1].Per != "node" {
		t.Errorf("rate limits = %+v", c.RateLimits)
	}
	if got := c.BlastRadius[0].Actions; len(got) != 2 || got[0] != "node.cordon" {
		t.Errorf("blast radius default actions = %v", got)
	}
	if !c.Approval.TwoPersonCritical || !c.Approval.TwoPersonUnknownRequester {
		t.Errorf("approval = %+v", c.Approval)
	}
	if c.Cooldown.PerAction["node.cordon"] != time.Hour || c.Approval.TTL != 30*time.Minute {
		t.Errorf("durations = %v %v", c.Cooldown.PerAction, c.Approval.TTL)
	}
	if c.Verification.WindowFor("node.cordon") != 2*time.Minute || c.Verification.WindowFor("x") != 5*time.Minute {
		t.Errorf("verification windows wrong: %+v", c.Verification)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Approval.MinRisk != "critical" || c.Approval.TTL != time.Hour || c.Maintenance.Labels[0] != DefaultMaintenanceKey ||
		c.UncordonActions[0] != "node.uncordon" || c.Verification.Window != 10*time.Minute || c.Verification.Escalations != 1 {
		t.Errorf("defaults = %+v", c)
	}
}

func TestLoadFileErrors(t *testing.T) {
	want := map[string]string{
		"unknown-field.yaml":    "guards config: yaml: unmarshal errors:\n  line 1: field dry_runn not found in type guard.Config",
		"rate-no-action.yaml":   `guards config: rate_limits[0]: action is required (use "*" for every action)`,
		"rate-bad-per.yaml":     `guards config: rate_limits[0]: per must be action or node, got "zone"`,
		"rate-zero.yaml":        "guards config: rate_limits[0]: rate must be positive",
		"rate-no-every.yaml":    "guards config: rate_limits[0]: every must be a positive duration",
		"blast-no-limit.yaml":   "guards config: blast_radius[0]: set max_nodes or max_percent",
		"blast-percent.yaml":    "guards config: blast_radius[0]: max_percent must be between 0 and 100",
		"blast-no-actions.yaml": "guards config: blast_radius[0]: actions must not be empty",
		"storm.yaml":            "guards config: storm: nodes and window must be positive",
		"cooldown.yaml":         "guards config: cooldown: default must not be negative",
		"cooldown-action.yaml":  "guards config: cooldown: per_action node.cordon must not be negative",
		"hysteresis.yaml":       "guards config: hysteresis: count must be at least 1 and window positive",
		"approval-risk.yaml":    `guards config: approval: min_risk must be low, high, critical or none, got "medium"`,
		"approval-ttl.yaml":     "guards config: approval: ttl must not be negative",
		"approval-hold.yaml":    `guards config: approval: hold_on_refusal: unknown reason "nope"`,
		"verification.yaml":     "guards config: verification: escalations must not be negative",
		"bad-duration.yaml":     "guards config: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `soon` into time.Duration",
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) != len(want) {
		t.Fatalf("%d fixtures, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadFile(f)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if got := err.Error(); got != want[filepath.Base(f)] {
				t.Errorf("error\n got %q\nwant %q", got, want[filepath.Base(f)])
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/good.yaml", "testdata/bad/storm.yaml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("parsed config fails validation: %v", verr)
			}
		}
	})
}

// TestDocsExample keeps the example in docs/guards.md valid.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/guards.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ex, ok := strings.Cut(string(b), "## Example\n\n```yaml\n")
	if !ok {
		t.Fatal("docs/guards.md has no example")
	}
	ex, _, _ = strings.Cut(ex, "```")
	c, err := Parse([]byte(ex))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.BlastRadius) != 2 || c.Storm.Nodes != 20 {
		t.Errorf("example parsed as %+v", c)
	}
}
