# Properties every decision of the library keeps, checked over the scenarios of the
# condition tests.
package remedy.contract_test

import data.remedy

scenarios := [
	data.remedy.irq_skew_test.skewed,
	data.remedy.irq_skew_test.restarted,
	data.remedy.packet_drops_test.ring,
	data.remedy.packet_drops_test.ring_few_queues,
	data.remedy.packet_drops_test.backlog,
	data.remedy.packet_drops_test.budget,
	data.remedy.packet_drops_test.single_cpu,
	data.remedy.packet_drops_test.after_fixes,
	data.remedy.packet_drops_test.after_freeze,
	data.remedy.vm_freeze_test.freeze,
	data.remedy.psi_test.node_cpu,
	data.remedy.psi_test.pod_contended,
	data.remedy.psi_test.memory_full,
]

all_decisions := {d | some s in scenarios; some d in remedy.decisions with input as s}

cluster_actions := {"node.cordon", "node.uncordon", "node.taint", "node.untaint", "node.drain", "workload.migrate"}

test_every_scenario_decides_something if {
	every s in scenarios {
		count(remedy.decisions) > 0 with input as s
	}
}

test_cordon_and_migrate_are_high_risk_and_need_approval if {
	actions := {d.action | some d in all_decisions; d.action in cluster_actions}
	actions == {"node.cordon", "workload.migrate"}
	every d in all_decisions {
		cluster_action_is_risky(d)
	}
}

cluster_action_is_risky(d) if not d.action in cluster_actions

cluster_action_is_risky(d) if {
	d.action in cluster_actions
	d.risk == "high"
	d.requires_approval == true
}

test_risky_decisions_need_approval if {
	every d in all_decisions {
		d.risk in {"low", "high", "critical"}
		d.risk != "low" == object.get(d, "requires_approval", false)
	}
}

test_every_decision_says_why if {
	every d in all_decisions {
		count(d.reason) > 20
		is_object(d.params)
	}
}

test_nothing_without_a_signal if {
	count(remedy.decisions) == 0 with input as {}
}
