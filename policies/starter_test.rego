package remedy_test

import data.remedy

test_irq_skew_restarts_irqbalance if {
	ds := remedy.decisions with input as {"signal": {"kind": "irq_skew", "status": "firing", "labels": {"cpus": "4,5"}}}
	count(ds) == 1
	some d in ds
	d.action == "irqbalance.restart"
	d.risk == "low"
}

test_resolved_irq_skew_does_nothing if {
	count(remedy.decisions) == 0 with input as {"signal": {"kind": "irq_skew", "status": "resolved", "labels": {}}}
}

test_backlog_drops_raise_backlog if {
	ds := remedy.decisions with input as {"signal": {"kind": "packet_drops", "status": "firing", "labels": {"cause": "backlog"}}}
	some d in ds
	d.action == "sysctl.set"
	d.params == {"key": "net.core.netdev_max_backlog", "value": 8192}
}

test_ring_drops_are_not_a_backlog_fix if {
	count(remedy.decisions) == 0 with input as {"signal": {"kind": "packet_drops", "status": "firing", "labels": {"cause": "ring"}}}
}
