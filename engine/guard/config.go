package guard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/remedyhq/remedy/engine/policy"
)

// Config is the guards file. It is the operator's, not the policy's: no decision can
// loosen it. Zero values mean "no limit" except where a default is documented.
type Config struct {
	// DryRun makes every action a dry run.
	DryRun bool `yaml:"dry_run" json:"dry_run"`
	// DryRunActions makes these actions dry runs.
	DryRunActions []string `yaml:"dry_run_actions" json:"dry_run_actions,omitempty"`
	// RateLimits are token buckets per action type and per node.
	RateLimits []RateLimit `yaml:"rate_limits" json:"rate_limits,omitempty"`
	// BlastRadius bounds how many nodes may be cordoned or migrating at once.
	BlastRadius []BlastRadius `yaml:"blast_radius" json:"blast_radius,omitempty"`
	// Storm trips a per-kind breaker when too many nodes fire the same kind.
	Storm *Storm `yaml:"storm" json:"storm,omitempty"`
	// Cooldown is the minimum time between two runs of one action on one node.
	Cooldown Cooldown `yaml:"cooldown" json:"cooldown"`
	// Hysteresis: a signal must fire Count times within Window before remedy acts.
	Hysteresis *Hysteresis `yaml:"hysteresis" json:"hysteresis,omitempty"`
	// Maintenance names the labels and annotations that put a node out of remedy's reach.
	Maintenance Maintenance `yaml:"maintenance" json:"maintenance"`
	// UncordonActions are the actions that make a node schedulable again; they are
	// refused on a node a person cordoned (default [node.uncordon]).
	UncordonActions []string `yaml:"uncordon_actions" json:"uncordon_actions"`
	// Approval says which decisions wait for a human.
	Approval Approval `yaml:"approval" json:"approval"`
	// Verification says how long remedy waits for a signal to resolve after an action.
	Verification Verification `yaml:"verification" json:"verification"`
}

// RateLimit is one token bucket family: per action type (Per: action) or per node and
// action (Per: node). Action "*" matches every action.
type RateLimit struct {
	Action string        `yaml:"action" json:"action"`
	Per    string        `yaml:"per" json:"per"`
	Rate   int           `yaml:"rate" json:"rate"`
	Every  time.Duration `yaml:"every" json:"every"`
	Burst  int           `yaml:"burst" json:"burst"`
}

// BlastRadius bounds the nodes that are cordoned or migrating at once, counting nodes
// cordoned by anyone. With GroupBy the bound holds per value of that label (a zone, a
// pool); with Selector only over the nodes that carry all its labels.
type BlastRadius struct {
	Name string `yaml:"name" json:"name"`
	// Actions are the actions that take a node out (default [node.cordon, node.drain]).
	Actions    []string          `yaml:"actions" json:"actions"`
	MaxNodes   int               `yaml:"max_nodes" json:"max_nodes,omitempty"`
	MaxPercent float64           `yaml:"max_percent" json:"max_percent,omitempty"`
	GroupBy    string            `yaml:"group_by" json:"group_by,omitempty"`
	Selector   map[string]string `yaml:"selector" json:"selector,omitempty"`
}

// Storm is the breaker: more than Nodes distinct nodes firing one kind within Window
// stops remedy acting on that kind until a human resumes it.
type Storm struct {
	Nodes  int           `yaml:"nodes" json:"nodes"`
	Window time.Duration `yaml:"window" json:"window"`
}

// Cooldown is per (node, action).
type Cooldown struct {
	Default   time.Duration            `yaml:"default" json:"default"`
	PerAction map[string]time.Duration `yaml:"per_action" json:"per_action,omitempty"`
}

// Hysteresis asks for Count firings of a (node, kind) within Window.
type Hysteresis struct {
	Count  int           `yaml:"count" json:"count"`
	Window time.Duration `yaml:"window" json:"window"`
}

// Maintenance lists label and annotation keys; a node carrying any of them (with any
// value but "false") is left alone (default label and annotation remedy.io/maintenance).
type Maintenance struct {
	Labels      []string `yaml:"labels" json:"labels"`
	Annotations []string `yaml:"annotations" json:"annotations"`
}

// Approval selects the decisions that wait for a human.
type Approval struct {
	// MinRisk: decisions at or above this tier wait (default critical; "none" turns
	// risk-based approval off, requires_approval still holds).
	MinRisk string `yaml:"min_risk" json:"min_risk"`
	// TTL after which a pending action expires (default 1h).
	TTL time.Duration `yaml:"ttl" json:"ttl"`
	// TwoPersonCritical makes critical actions need two different approvers.
	TwoPersonCritical bool `yaml:"two_person_critical" json:"two_person_critical"`
	// TwoPersonUnknownRequester makes a held action whose signal names no person (no
	// remedy_requested_by label, no person's token on the webhook) need two different
	// approvers: whoever raised it may be one of them.
	TwoPersonUnknownRequester bool `yaml:"two_person_unknown_requester" json:"two_person_unknown_requester"`
	// HoldOnRefusal turns these guard refusals into a request for a human instead
	// (e.g. [blast_radius]).
	HoldOnRefusal []Reason `yaml:"hold_on_refusal" json:"hold_on_refusal,omitempty"`
}

// Verification configures the check after an action.
type Verification struct {
	// Window is how long a signal has to resolve after a successful action (default
	// 10m; 0 in the file means the default, a negative value turns verification off).
	Window    time.Duration            `yaml:"window" json:"window"`
	PerAction map[string]time.Duration `yaml:"per_action" json:"per_action,omitempty"`
	// Escalations bounds the re-evaluations of one incident (default 1).
	Escalations int `yaml:"escalations" json:"escalations"`
}

// DefaultMaintenanceKey is the label and annotation that mark a node under maintenance.
const DefaultMaintenanceKey = "remedy.io/maintenance"

// ErrConfig marks an invalid guards file.
var ErrConfig = errors.New("guards config")

// LoadFile reads and validates a guards file (YAML or JSON).
func LoadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read guards: %w", err)
	}
	return Parse(b)
}

// Parse decodes strictly (unknown fields are errors), applies defaults, then validates.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Default fills the documented defaults.
func (c *Config) Default() {
	if c.UncordonActions == nil {
		c.UncordonActions = []string{"node.uncordon"}
	}
	if c.Maintenance.Labels == nil {
		c.Maintenance.Labels = []string{DefaultMaintenanceKey}
	}
	if c.Maintenance.Annotations == nil {
		c.Maintenance.Annotations = []string{DefaultMaintenanceKey}
	}
	for i := range c.BlastRadius {
		if c.BlastRadius[i].Actions == nil {
			c.BlastRadius[i].Actions = []string{"node.cordon", "node.drain"}
		}
		if c.BlastRadius[i].Name == "" {
			c.BlastRadius[i].Name = fmt.Sprintf("blast_radius[%d]", i)
		}
	}
	for i := range c.RateLimits {
		if c.RateLimits[i].Per == "" {
			c.RateLimits[i].Per = "action"
		}
		if c.RateLimits[i].Burst == 0 {
			c.RateLimits[i].Burst = c.RateLimits[i].Rate
		}
	}
	if c.Approval.MinRisk == "" {
		c.Approval.MinRisk = string(policy.RiskCritical)
	}
	if c.Approval.TTL == 0 {
		c.Approval.TTL = time.Hour
	}
	if c.Verification.Window == 0 {
		c.Verification.Window = 10 * time.Minute
	}
	if c.Verification.Escalations == 0 {
		c.Verification.Escalations = 1
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	for i, r := range c.RateLimits {
		switch {
		case r.Action == "":
			return bad("rate_limits[%d]: action is required (use \"*\" for every action)", i)
		case r.Per != "action" && r.Per != "node":
			return bad("rate_limits[%d]: per must be action or node, got %q", i, r.Per)
		case r.Rate <= 0:
			return bad("rate_limits[%d]: rate must be positive", i)
		case r.Every <= 0:
			return bad("rate_limits[%d]: every must be a positive duration", i)
		case r.Burst < 0:
			return bad("rate_limits[%d]: burst must not be negative", i)
		}
	}
	for i, b := range c.BlastRadius {
		switch {
		case b.MaxNodes <= 0 && b.MaxPercent <= 0:
			return bad("blast_radius[%d]: set max_nodes or max_percent", i)
		case b.MaxNodes < 0:
			return bad("blast_radius[%d]: max_nodes must not be negative", i)
		case b.MaxPercent < 0 || b.MaxPercent > 100:
			return bad("blast_radius[%d]: max_percent must be between 0 and 100", i)
		case len(b.Actions) == 0:
			return bad("blast_radius[%d]: actions must not be empty", i)
		}
	}
	if s := c.Storm; s != nil && (s.Nodes <= 0 || s.Window <= 0) {
		return bad("storm: nodes and window must be positive")
	}
	if c.Cooldown.Default < 0 {
		return bad("cooldown: default must not be negative")
	}
	for a, d := range c.Cooldown.PerAction {
		if d < 0 {
			return bad("cooldown: per_action %s must not be negative", a)
		}
	}
	if h := c.Hysteresis; h != nil && (h.Count < 1 || h.Window <= 0) {
		return bad("hysteresis: count must be at least 1 and window positive")
	}
	switch policy.Risk(c.Approval.MinRisk) {
	case policy.RiskLow, policy.RiskHigh, policy.RiskCritical, "none":
	default:
		return bad("approval: min_risk must be low, high, critical or none, got %q", c.Approval.MinRisk)
	}
	if c.Approval.TTL < 0 {
		return bad("approval: ttl must not be negative")
	}
	for _, r := range c.Approval.HoldOnRefusal {
		if !r.known() {
			return bad("approval: hold_on_refusal: unknown reason %q", r)
		}
	}
	if c.Verification.Escalations < 0 {
		return bad("verification: escalations must not be negative")
	}
	return nil
}

// WindowFor is the verification window of an action; 0 means do not verify.
func (v Verification) WindowFor(action string) time.Duration {
	if d, ok := v.PerAction[action]; ok {
		return max(d, 0)
	}
	return max(v.Window, 0)
}
