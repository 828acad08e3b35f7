package remedy.lib_test

import data.remedy

test_cpu_mask if {
	remedy.cpu_mask(1) == "1"
	remedy.cpu_mask(4) == "f"
	remedy.cpu_mask(32) == "ffffffff"
	remedy.cpu_mask(40) == "ff,ffffffff"
	remedy.cpu_mask(64) == "ffffffff,ffffffff"
}

test_measure_falls_back_to_the_named_alert_value if {
	remedy.measure("spread_ratio") == 0.25 with input as {"signal": {"labels": {"value_name": "spread_ratio"}, "values": {"value": 0.25}}}
	not remedy.measured("queue_irqs") with input as {"signal": {"labels": {"value_name": "spread_ratio"}, "values": {"value": 0.25}}}
}

test_succeeded_reads_the_window if {
	hist := {"now": "2026-01-01T01:00:00Z", "history": [{"time": "2026-01-01T00:30:00Z", "type": "action.result", "action": "irqbalance.restart", "outcome": "succeeded", "kind": "irq_skew"}]}
	remedy.succeeded("irqbalance.restart", 3600) with input as hist
	not remedy.succeeded("irqbalance.restart", 600) with input as hist
	not remedy.succeeded("irq.spread", 3600) with input as hist
	remedy.succeeded_for("irq_skew", 3600) with input as hist
}

test_cordon_allowed_up_to_the_fraction if {
	remedy.cordon_allowed with input as {"node": {}, "cluster": {"nodes": 30, "cordoned": 2}}
	not remedy.cordon_allowed with input as {"node": {}, "cluster": {"nodes": 30, "cordoned": 3}}
	remedy.cordon_allowed with input as {"node": {}, "cluster": {"nodes": 3, "cordoned": 0}}
	not remedy.cordon_allowed with input as {"node": {"unschedulable": true}, "cluster": {"nodes": 30}}
}

test_cpu_count_from_the_node_facts if {
	remedy.cpu_count == 8 with input as {"node": {"cpus": 8}, "signal": {"values": {"online_cpus": 4}}}
}

# Without a cluster the engine knows no node facts: the input's node has no cpus at all.
test_cpu_count_falls_back_to_the_signal_without_node_facts if {
	remedy.cpu_count == 4 with input as {"node": {"name": "n1", "known": false}, "signal": {"values": {"online_cpus": 4}}}
	remedy.cpu_count == 4 with input as {"signal": {"values": {"online_cpus": 4}}}
	remedy.cpu_count == 4 with input as {"node": {"cpus": 0}, "signal": {"values": {"online_cpus": 4}}}
}

test_cpu_count_is_zero_when_nothing_says if {
	remedy.cpu_count == 0 with input as {"node": {"name": "n1"}, "signal": {"values": {}}}
}
