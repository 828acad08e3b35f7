package remedy.irq_skew_test

import data.remedy

# The field case: nine queue IRQs of eth0 on CPUs 4 and 5 of an 8-CPU node.
skewed := {
	"signal": {
		"kind": "irq_skew", "status": "firing", "node": "aks-1",
		"startsAt": "2026-01-01T00:50:00Z",
		"labels": {"iface": "eth0", "cpus": "4-5", "busiest_cpu": "5"},
		"values": {"queue_irqs": 9, "spread_cpus": 2, "possible_cpus": 8, "spread_ratio": 0.25},
	},
	"node": {"name": "aks-1"},
	"history": [],
	"now": "2026-01-01T01:00:00Z",
}

restarted_at(t) := object.union(skewed, {"history": [
	{"time": t, "type": "action.planned", "action": "irqbalance.restart", "outcome": "planned", "kind": "irq_skew"},
	{"time": t, "type": "action.result", "action": "irqbalance.restart", "outcome": "succeeded", "kind": "irq_skew"},
]})

restarted := restarted_at("2026-01-01T00:40:00Z")

spread := object.union(restarted, {"history": array.concat(restarted.history, [
	{"time": "2026-01-01T00:45:00Z", "type": "action.result", "action": "irq.spread", "outcome": "succeeded", "kind": "irq_skew"},
])})

balanced := object.union(skewed, {"signal": {"labels": {"cpus": "0-7"}, "values": {"spread_cpus": 8, "spread_ratio": 1}}})

resolved := object.union(skewed, {"signal": {"status": "resolved"}})

# An Alertmanager rule that fires on the ratio and names its value.
alert := {
	"signal": {
		"kind": "irq_skew", "status": "firing", "node": "aks-1",
		"labels": {"alertname": "NodeIRQSkew", "iface": "eth0", "value_name": "spread_ratio"},
		"values": {"value": 0.25},
	},
	"now": "2026-01-01T01:00:00Z",
}

test_nine_irqs_on_cpus_4_and_5_restart_irqbalance if {
	ds := remedy.decisions with input as skewed
	ds == {{
		"action": "irqbalance.restart", "params": {"interfaces": ["eth0"], "minCPUs": 5}, "risk": "low",
		"reason": "eth0: 9 queue IRQs on CPUs 4-5 only; restarting irqbalance so it spreads them again",
	}}
}

test_balanced_affinities_do_nothing if {
	count(remedy.decisions) == 0 with input as balanced
}

test_resolved_skew_does_nothing if {
	count(remedy.decisions) == 0 with input as resolved
}

test_restart_that_did_not_fix_escalates_to_irq_spread if {
	ds := remedy.decisions with input as restarted
	ds == {{
		"action": "irq.spread", "params": {"interface": "eth0"}, "risk": "low",
		"reason": "eth0: 9 queue IRQs on CPUs 4-5 although irqbalance was restarted within 3600s; spreading the queue IRQs across the CPUs",
	}}
}

test_restart_outside_the_window_is_tried_again if {
	ds := remedy.decisions with input as restarted_at("2025-12-31T23:00:00Z")
	{d.action | some d in ds} == {"irqbalance.restart"}
}

test_restart_that_did_not_spread_escalates if {
	inp := object.union(skewed, {"history": [{"time": "2026-01-01T00:40:00Z", "type": "action.result", "action": "irqbalance.restart", "outcome": "failed"}]})
	{d.action | some d in remedy.decisions} == {"irq.spread"} with input as inp
}

test_refused_or_dry_run_restart_is_no_attempt if {
	every outcome in ["refused", "dry_run", "expired"] {
		inp := object.union(skewed, {"history": [{"time": "2026-01-01T00:40:00Z", "type": "action.result", "action": "irqbalance.restart", "outcome": outcome}]})
		{d.action | some d in remedy.decisions} == {"irqbalance.restart"} with input as inp
	}
}

test_after_irq_spread_a_person_looks if {
	count(remedy.decisions) == 0 with input as spread
}

test_alertmanager_value_is_read_by_name if {
	[d.params | some d in remedy.decisions] == [{"interfaces": ["eth0"]}] with input as alert
	count(remedy.decisions) == 0 with input as object.union(alert, {"signal": {"values": {"value": 0.9}}})
}
