package remedy.packet_drops_test

import data.remedy

base := {
	"node": {
		"name": "aks-2", "cpus": 8,
		"nics": {"eth0": {"rxRingMax": 8192, "combinedMax": 8, "combinedCurrent": 8}},
	},
	"cluster": {"nodes": 20, "cordoned": 0},
	"history": [],
	"now": "2026-01-01T01:00:00Z",
}

drops(cause, iface) := object.union(base, {"signal": {
	"kind": "packet_drops", "status": "firing", "node": "aks-2",
	"labels": object.union({"cause": cause}, {"iface": iface | iface != ""}),
	"values": {"drops_per_second": 250},
}})

ring := drops("ring_overflow", "eth0")

# Eight CPUs, a NIC that could have eight queues but runs two.
ring_few_queues := object.union(ring, {"node": {"nics": {"eth0": {"combinedCurrent": 2}}}})

backlog := drops("backlog_overflow", "")

budget := object.union(drops("budget_exhausted", ""), {"signal": {"values": {"squeezes_per_second": 80}}})

single_cpu := drops("softirq_single_cpu", "eth0")

single_queue_drops := object.union(drops("dropped", "eth0"), {"node": {"nics": {"eth0": {"combinedMax": 1, "combinedCurrent": 1}}}})

fix(t, action) := {"time": t, "type": "action.result", "action": action, "outcome": "succeeded", "kind": "packet_drops"}

after_fixes := object.union(ring, {"history": [
	fix("2026-01-01T00:10:00Z", "nic.ring"),
	fix("2026-01-01T00:20:00Z", "nic.channels"),
	fix("2026-01-01T00:30:00Z", "sysctl.set"),
]})

after_freeze := object.union(backlog, {"history": [{
	"time": "2026-01-01T00:30:00Z", "type": "action.result", "action": "irqbalance.restart",
	"outcome": "succeeded", "kind": "vm_freeze",
}]})

test_ring_overflow_grows_the_ring_to_the_capped_maximum if {
	ds := remedy.decisions with input as ring
	ds == {{
		"action": "nic.ring", "params": {"interface": "eth0", "rx": 4096, "overMax": "clamp"}, "risk": "low",
		"reason": "eth0 drops (ring_overflow): the rx ring overflows; growing it to 4096 descriptors",
	}}
}

test_ring_overflow_without_facts_clamps_at_the_cap if {
	inp := object.union(ring, {"node": {"nics": {}}})
	[d.params | some d in remedy.decisions] == [{"interface": "eth0", "rx": 4096, "overMax": "clamp"}] with input as inp
}

test_ring_overflow_with_too_few_queues_adds_channels if {
	ds := remedy.decisions with input as ring_few_queues
	ds == {{
		"action": "nic.channels", "params": {"interface": "eth0", "combined": 8}, "risk": "low",
		"reason": "eth0 drops (ring_overflow): 2 queues where 8 are possible; raising the combined channels to 8",
	}}
}

test_backlog_overflow_raises_the_backlog_per_cpu if {
	ds := remedy.decisions with input as backlog
	ds == {{
		"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": 8192}, "risk": "low",
		"reason": "softnet drops (backlog_overflow): the softnet backlog overflows; raising net.core.netdev_max_backlog to 8192",
	}}
}

test_backlog_is_bounded if {
	[d.params.value | some d in remedy.decisions] == [2048] with input as object.union(backlog, {"node": {"cpus": 1}})
	[d.params.value | some d in remedy.decisions] == [65536] with input as object.union(backlog, {"node": {"cpus": 128}})
}

test_budget_exhaustion_raises_the_budget if {
	[d.params | some d in remedy.decisions] == [{"values": {"net.core.netdev_budget": 600, "net.core.netdev_budget_usecs": 8000}}] with input as budget
}

test_few_squeezes_are_noise if {
	count(remedy.decisions) == 0 with input as object.union(budget, {"signal": {"values": {"squeezes_per_second": 3}}})
}

test_one_cpu_doing_softirq_work_enables_rps if {
	[d.params | some d in remedy.decisions] == [{"interface": "eth0", "cpus": "ff"}] with input as single_cpu
}

test_stack_drops_on_a_single_queue_nic_enable_rps if {
	{d.action | some d in remedy.decisions} == {"nic.rps"} with input as single_queue_drops
}

test_stack_drops_on_a_multi_queue_nic_have_no_local_fix if {
	count(remedy.decisions) == 0 with input as drops("dropped", "eth0")
}

# No node facts (the embedded default, no cluster): the agent's online_cpus sizes the
# mask and the backlog.
no_facts(inp) := object.union(json.remove(inp, ["node/cpus", "node/nics"]), {"signal": {"values": {"online_cpus": 4}}})

test_rps_without_node_facts_uses_the_signals_cpu_count if {
	[d.params | some d in remedy.decisions] == [{"interface": "eth0", "cpus": "f"}] with input as no_facts(single_cpu)
}

test_backlog_without_node_facts_uses_the_signals_cpu_count if {
	[d.params.value | some d in remedy.decisions] == [4096] with input as no_facts(backlog)
}

test_rps_needs_the_cpu_count if {
	count(remedy.decisions) == 0 with input as object.union(single_cpu, {"node": {"cpus": 0}})
}

test_drops_below_the_rate_do_nothing if {
	count(remedy.decisions) == 0 with input as object.union(ring, {"signal": {"values": {"drops_per_second": 0.2}}})
}

test_resolved_drops_do_nothing if {
	count(remedy.decisions) == 0 with input as object.union(ring, {"signal": {"status": "resolved"}})
}

test_drops_that_persist_after_fixes_cordon_and_migrate if {
	ds := remedy.decisions with input as after_fixes
	ds == {
		{
			"action": "node.cordon", "params": {}, "risk": "high", "requires_approval": true,
			"reason": "eth0 drops (ring_overflow) persist after 3 fixes; cordoning the node",
		},
		{
			"action": "workload.migrate", "params": {"maxPods": 0, "timeout": "10m"}, "risk": "high", "requires_approval": true,
			"reason": "eth0 drops (ring_overflow) persist after 3 fixes; moving the workloads off the node",
		},
	}
}

test_drops_that_persist_after_a_freeze_remedy_cordon_and_migrate if {
	{d.action | some d in remedy.decisions} == {"node.cordon", "workload.migrate"} with input as after_freeze
}

test_no_cordon_when_the_cluster_has_cordoned_enough if {
	inp := object.union(after_fixes, {"cluster": {"nodes": 20, "cordoned": 2}})
	count(remedy.decisions) == 0 with input as inp
}

test_cordoned_node_still_migrates if {
	inp := object.union(after_fixes, {"node": {"unschedulable": true}})
	{d.action | some d in remedy.decisions} == {"workload.migrate"} with input as inp
}

test_old_fixes_do_not_count if {
	inp := object.union(ring, {"history": [
		fix("2025-12-31T20:00:00Z", "nic.ring"),
		fix("2025-12-31T20:10:00Z", "nic.channels"),
		fix("2025-12-31T20:20:00Z", "sysctl.set"),
	]})
	{d.action | some d in remedy.decisions} == {"nic.ring"} with input as inp
}

# The shape of engine/demo/samples/packet_drops.json: node_exporter's device label, a
# short cause and the rate as the alert's value.
alert := {
	"signal": {
		"kind": "packet_drops", "status": "firing", "node": "aks-nodepool1-00000002",
		"labels": {"alertname": "NodePacketDrops", "device": "eth0", "cause": "backlog"},
		"values": {"value": 1200},
	},
	"node": {"name": "aks-nodepool1-00000002"},
	"now": "2026-01-01T01:00:00Z",
}

test_alertmanager_backlog_alert if {
	ds := remedy.decisions with input as alert
	ds == {{
		"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": 8192}, "risk": "low",
		"reason": "eth0 drops (backlog_overflow): the softnet backlog overflows; raising net.core.netdev_max_backlog to 8192",
	}}
	count(remedy.decisions) == 0 with input as object.union(alert, {"signal": {"values": {"value": 0.5}}})
}
