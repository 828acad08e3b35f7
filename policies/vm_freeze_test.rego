package remedy.vm_freeze_test

import data.remedy

freeze := {
	"signal": {
		"kind": "vm_freeze", "status": "firing", "node": "aks-3",
		"labels": {"source": "clock", "cause": "wall_clock_jump"},
		"values": {"wall_jump_seconds": 9.5},
	},
	"node": {"name": "aks-3", "known": true, "labels": {"remedy.dev/irq-skewed": "true"}},
	"history": [],
	"now": "2026-01-01T01:00:00Z",
}

unskewed := object.union(freeze, {"node": {"labels": {"remedy.dev/irq-skewed": "false"}}})

by_condition := object.union(unskewed, {"node": {"conditions": [{"type": "IRQSkewed", "status": "True"}]}})

by_signal := object.union(unskewed, {"signal": {"labels": {"irq_skewed": "true"}}})

restarted := object.union(freeze, {"history": [{
	"time": "2026-01-01T00:58:00Z", "type": "action.result", "action": "irqbalance.restart",
	"outcome": "succeeded", "kind": "irq_skew",
}]})

test_freeze_with_skewed_irqs_restarts_irqbalance if {
	ds := remedy.decisions with input as freeze
	ds == {{
		"action": "irqbalance.restart", "params": {}, "risk": "low",
		"reason": "VM freeze (wall_clock_jump) left the NIC IRQs skewed (node label remedy.dev/irq-skewed); restarting irqbalance",
	}}
}

test_freeze_with_balanced_irqs_does_nothing if {
	count(remedy.decisions) == 0 with input as unskewed
}

test_skew_from_a_node_condition if {
	[d.reason | some d in remedy.decisions] == ["VM freeze (wall_clock_jump) left the NIC IRQs skewed (node condition IRQSkewed); restarting irqbalance"] with input as by_condition
}

test_skew_from_the_signal if {
	{d.action | some d in remedy.decisions} == {"irqbalance.restart"} with input as by_signal
}

test_recent_restart_is_not_repeated if {
	count(remedy.decisions) == 0 with input as restarted
}

test_resolved_freeze_does_nothing if {
	count(remedy.decisions) == 0 with input as object.union(freeze, {"signal": {"status": "resolved"}})
}

# The embedded default: no cluster, so no node facts (known false, no labels).
no_facts := object.union(json.remove(freeze, ["node/labels"]), {"node": {"known": false}})

test_freeze_without_node_facts_restarts_irqbalance if {
	ds := remedy.decisions with input as no_facts
	ds == {{
		"action": "irqbalance.restart", "params": {}, "risk": "low",
		"reason": "VM freeze (wall_clock_jump): no node facts say whether it left the NIC IRQs skewed; restarting irqbalance, which spreads them again if it did",
	}}
}

test_freeze_without_node_facts_respects_the_window if {
	count(remedy.decisions) == 0 with input as object.union(no_facts, {"history": restarted.history})
}

test_freeze_without_node_facts_believes_the_signal if {
	count(remedy.decisions) == 0 with input as object.union(no_facts, {"signal": {"labels": {"irq_skewed": "false"}}})
	[d.reason | some d in remedy.decisions] == ["VM freeze (wall_clock_jump) left the NIC IRQs skewed (the freeze signal reports IRQ skew); restarting irqbalance"] with input as object.union(no_facts, {"signal": {"labels": {"irq_skewed": "true"}}})
}
