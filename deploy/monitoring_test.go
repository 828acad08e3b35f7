package deploy_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ruleSpec writes the PrometheusRule's spec (a plain Prometheus rule file) to dir.
func ruleSpec(t *testing.T, dir string) (string, []rule) {
	t.Helper()
	b, err := os.ReadFile("monitoring/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("monitoring/prometheusrule.yaml is %s %s", pr.APIVersion, pr.Kind)
	}
	var raw struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.JSONToYAML(raw.Spec)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "remedy.rules.yaml")
	if err := os.WriteFile(f, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return f, rules
}

type rule struct {
	Alert  string            `json:"alert"`
	Expr   string            `json:"expr"`
	Labels map[string]string `json:"labels"`
}

// TestPrometheusRules: the rules parse and lint clean (promtool check rules) and behave
// as their unit tests say (promtool test rules, monitoring/tests/), one test group per
// alert with input series.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := t.TempDir()
	f, rules := ruleSpec(t, dir)
	run(t, dir, promtool, "check", "rules", f)

	tests, err := filepath.Glob("monitoring/tests/*.yaml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule unit tests in monitoring/tests (%v)", err)
	}
	var tested []string
	for _, src := range tests {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, promtool, "test", "rules", dst)
		for _, m := range regexp.MustCompile(`alertname: (\w+)`).FindAllStringSubmatch(string(b), -1) {
			tested = append(tested, m[1])
		}
	}
	for _, r := range rules {
		if r.Alert != "" && !slices.Contains(tested, r.Alert) {
			t.Errorf("alert %s has no promtool unit test", r.Alert)
		}
	}
}

// TestRulesFeedRemedy: every alert routed to remedy says its kind and what its value
// is, and every remedy_* metric the rules and the dashboard read is one remedy exports.
func TestRulesFeedRemedy(t *testing.T) {
	_, rules := ruleSpec(t, t.TempDir())
	kinds := []string{"irq_skew", "packet_drops", "psi", "vm_freeze"}
	for _, r := range rules {
		if !strings.HasPrefix(r.Alert, "Node") {
			continue
		}
		k := r.Labels["remedy_kind"]
		if !slices.Contains(kinds, k) {
			t.Errorf("%s: remedy_kind %q, want one of %v", r.Alert, k, kinds)
		}
		if k != "vm_freeze" && r.Labels["value_name"] == "" {
			t.Errorf("%s: no value_name label (what the value annotation measures)", r.Alert)
		}
	}

	exported := exportedMetrics(t)
	var exprs []string
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	exprs = append(exprs, dashboardExprs(t)...)
	for _, e := range exprs {
		for _, m := range regexp.MustCompile(`\bremedy_[a-z0-9_]+`).FindAllString(e, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if !exported[base] && base != "remedy_kind" && base != "remedy_engine" {
				t.Errorf("%s is not a metric remedy exports (expression %q)", m, e)
			}
		}
	}
}

// exportedMetrics reads the metric names remedy's Go code registers: "remedy_…" string
// literals, and "remedy_irq_" + name for the IRQ detector's gauges.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	lit := regexp.MustCompile(`Name:\s+"(remedy_[a-z0-9_]+)"`)
	prefixed := regexp.MustCompile(`"(remedy_[a-z0-9_]+_)" \+ name`)
	gauge := regexp.MustCompile(`\bg\("([a-z0-9_]+)",`)
	for _, dir := range []string{"../engine/", "../agent/", "../webhooks/", "../nodefs/"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
			if pm := prefixed.FindStringSubmatch(string(b)); pm != nil {
				for _, m := range gauge.FindAllStringSubmatch(string(b), -1) {
					names[pm[1]+m[1]] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !names["remedy_decisions_total"] || !names["remedy_irq_skewed"] {
		t.Fatalf("metric scan found too little: %v", names)
	}
	return names
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// TestDashboardQueries: every dashboard query is valid PromQL (promtool checks them as
// recording rules, with Grafana's variables replaced) and the panels cover what the
// dashboard is for.
func TestDashboardQueries(t *testing.T) {
	promtool := tool(t, "promtool")
	exprs := dashboardExprs(t)
	repl := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*")
	var sb strings.Builder
	sb.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		j, _ := json.Marshal(repl.Replace(e))
		fmt.Fprintf(&sb, "      - record: dashboard:q%d\n        expr: %s\n", i, j)
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(f, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, filepath.Dir(f), promtool, "check", "rules", "--lint=none", f)

	all := strings.Join(exprs, "\n")
	for what, metric := range map[string]string{
		"signals":           "remedy_signals_total",
		"decisions":         "remedy_decisions_total",
		"pending approvals": "remedy_approvals_pending",
		"guard refusals":    "remedy_guard_refusals_total",
		"actions":           "remedy_actions_total",
		"decision latency":  "remedy_policy_eval_seconds_bucket",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("dashboard does not show %s (%s)", what, metric)
		}
	}
}

// TestAlertmanagerExample: the example passes amtool check-config, and its routes send
// remedy's alerts, and only those, to the remedy receiver.
func TestAlertmanagerExample(t *testing.T) {
	amtool := tool(t, "amtool")
	f, _ := filepath.Abs("monitoring/alertmanager.yml")
	run(t, ".", amtool, "check-config", f)
	for labels, want := range map[string]string{
		"alertname=NodeIRQSkew remedy_kind=irq_skew node=n1":                 "remedy",
		"alertname=NodePacketDrops remedy_kind=packet_drops node=n1 cause=x": "remedy",
		"alertname=NodeCPUPressureHigh remedy_kind=psi node=n1":              "remedy",
		"alertname=NodeNetworkDrops node=n1 device=eth0":                     "remedy",
		"alertname=NodeMemPressureHigh node=n1":                              "remedy",
		"alertname=SomethingElse remedy_kind=psi node=n1":                    "remedy",
		"alertname=RemedyPaused":                                             "default",
		"alertname=KubePodCrashLooping namespace=x":                          "default",
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + f}, strings.Fields(labels)...)
		out := strings.TrimSpace(string(run(t, ".", amtool, args...)))
		if out != want {
			t.Errorf("%s: routed to %q, want %q", labels, out, want)
		}
	}
}
