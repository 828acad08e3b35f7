package engine

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/wire/signal"
)

// roundTrip is the input as decide converted it before Input.Value: marshalled (as the
// audit hash reads it), unmarshalled into any, converted to an AST value.
func roundTrip(t *testing.T, in *Input) ast.Value {
	t.Helper()
	var doc any
	_ = json.Unmarshal(mustJSON(in), &doc) // decide ignored the error (a number out of range decodes as null)
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// canonical is v as JSON with sorted keys and every number exactly as the value holds
// it, so "8000" and "8e+03" differ although they compare equal.
func canonical(t *testing.T, v ast.Value) string {
	t.Helper()
	x, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func valueInputs() map[string]Input {
	now := time.Date(2026, 11, 26, 1, 40, 0, 123456789, time.UTC)
	cet := time.FixedZone("CET", 3600)
	full := Input{
		Signal: signal.Signal{
			Source: "alertmanager", Kind: signal.KindPacketDrops, Node: "aks-nodepool1-00000002", Status: signal.Firing,
			Fingerprint: "5d0e7a", StartsAt: now.Add(-90 * time.Second), EndsAt: now.Add(time.Hour).In(cet),
			Labels:      map[string]string{"alertname": "NodePacketDrops", "cause": "backlog", "device": "eth0", "html": "<a&b>", "uni": "zürich \u2028 ✓"},
			Annotations: map[string]string{"summary": "drops on eth0", "value": "1234.5"},
			Values: map[string]float64{"value": 1234.5, "drops_per_second": 1e21, "tiny": 1e-7, "neg": -3, "negzero": math.Copysign(0, -1),
				"zero": 0, "big": 123456789, "int512": 512, "int513": 513, "third": 1.0 / 3, "million": 1e6},
		},
		Node: facts.Node{
			Name: "aks-nodepool1-00000002", Known: true,
			Labels:        map[string]string{"kubernetes.io/os": "linux", "remedy.dev/irq-skewed": "true"},
			Annotations:   map[string]string{"note": ""},
			Conditions:    []facts.Condition{{Type: "Ready", Status: "True"}, {Type: "IRQSkewed", Status: "True", Reason: "Detected"}},
			Unschedulable: true, CordonedBy: "remedy", AllocatableCPU: 1<<60 + 1, CPUs: 32, PodCount: 31,
			NICs: map[string]facts.NIC{
				"eth0": {RxRingMax: 8192, TxRingMax: 4096, CombinedMax: 8, CombinedCurrent: 2},
				"eth1": {},
			},
		},
		Cluster: facts.Cluster{Nodes: 20, Cordoned: 3, CordonedBy: map[string]map[string]int{
			"topology.kubernetes.io/zone": {"eu-1a": 2, "eu-1b": 1},
			"empty":                       {},
			"nil":                         nil,
		}},
		History: []historyEntry{
			{Time: now.Add(-time.Hour), Type: "action.planned", Action: "sysctl.set", ActionID: "a1", Outcome: "planned", Kind: "packet_drops", CorrelationID: "c1"},
			{Time: now.Add(-59 * time.Minute).In(cet), Type: "action.result", Action: "sysctl.set", ActionID: "a1", Outcome: "succeeded", CorrelationID: "c1"},
		},
		Now:    now,
		DryRun: true,
	}
	agent := Input{
		Signal: signal.Signal{
			Source: "agent", Kind: signal.KindIRQSkew, Node: "aks-1", Status: signal.Firing, Fingerprint: "f1",
			StartsAt: now.Add(-time.Minute),
			Labels:   map[string]string{"iface": "eth0", "cpus": "4-5", "busiest_cpu": "5"},
			Values:   map[string]float64{"queue_irqs": 9, "spread_cpus": 2, "possible_cpus": 8, "spread_ratio": 0.25, "busiest_share": 0.6},
		},
		Node:    facts.Node{Name: "aks-1"},
		History: []historyEntry{},
		Now:     now,
	}
	empties := agent
	empties.Signal.Labels, empties.Signal.Annotations, empties.Signal.Values = map[string]string{}, map[string]string{}, map[string]float64{}
	empties.Node = facts.Node{Name: "n", Labels: map[string]string{}, Conditions: []facts.Condition{}, NICs: map[string]facts.NIC{}}
	empties.Cluster.CordonedBy = map[string]map[string]int{}

	// Inputs whose JSON form is not the plain encoding of their fields.
	nan := agent
	nan.Signal.Values = map[string]float64{"value": math.NaN()}
	inf := agent
	inf.Signal.Values = map[string]float64{"value": math.Inf(-1)}
	badUTF8 := agent
	badUTF8.Signal.Labels = map[string]string{"iface": "eth\xff0", "k\xfe": "v"}
	raw := agent
	raw.Signal.Raw = json.RawMessage(`{ "labels": {"a": [1, 2.50, null, true]}, "n": 1e400 }`)
	badRaw := agent
	badRaw.Signal.Raw = json.RawMessage(`{not json`)
	farFuture := agent
	farFuture.Now = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

	return map[string]Input{
		"zero": {}, "full": full, "agent": agent, "empty maps": empties,
		"NaN": nan, "-Inf": inf, "invalid UTF-8": badUTF8, "raw payload": raw, "invalid raw payload": badRaw,
		"year 10000": farFuture,
	}
}

func TestInputValueIsTheJSONRoundTrip(t *testing.T) {
	for name, in := range valueInputs() {
		t.Run(name, func(t *testing.T) {
			want, got := roundTrip(t, &in), in.Value()
			if ast.Compare(got, want) != 0 {
				t.Errorf("Value():\n%v\nJSON round trip:\n%v", got, want)
			}
			if g, w := canonical(t, got), canonical(t, want); g != w {
				t.Errorf("Value() as JSON:\n%s\nJSON round trip:\n%s", g, w)
			}
		})
	}
}

// TestInputValueFastPath checks that the ordinary inputs do not take the JSON round trip
// (the fallback would pass the test above trivially).
func TestInputValueFastPath(t *testing.T) {
	inputs := valueInputs()
	for _, name := range []string{"zero", "full", "agent", "empty maps"} {
		in := inputs[name]
		b := valueBuilder{ok: true}
		b.input(&in)
		if !b.ok {
			t.Errorf("%s: built through JSON", name)
		}
	}
	for _, name := range []string{"NaN", "-Inf", "invalid UTF-8", "raw payload", "invalid raw payload", "year 10000"} {
		in := inputs[name]
		b := valueBuilder{ok: true}
		b.input(&in)
		if b.ok {
			t.Errorf("%s: built directly, want the JSON round trip", name)
		}
	}
}
