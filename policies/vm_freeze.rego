# VM freeze: a frozen VM can come back with irqbalance stuck and the NIC's queue IRQs on
# a few CPUs. When the node is known to be skewed (a node label or condition, or the
# freeze signal says so), restart irqbalance, once per window. Without node facts (no
# cluster) and no word from the signal either way, restart it too: the restart is low
# risk and spreads the IRQs again if the freeze left them skewed. Drops that persist after
# it are escalated by packet_drops.rego; the skew itself by irq_skew.rego.
#
# Signal: kind vm_freeze; labels source (clock, imds, kubernetes), cause, event_type and,
# optionally, irq_skewed ("true" when the sender checked the affinities).
package remedy

freeze_cfg := data.remedy.config.vm_freeze

freeze_skew_evidence := "the freeze signal reports IRQ skew" if label("irq_skewed") == "true"

freeze_skew_evidence := sprintf("node label %s", [k]) if {
	label("irq_skewed") != "true"
	some k in freeze_cfg.skew_labels
	object.get(object.get(input.node, "labels", {}), k, "") == "true"
}

freeze_skew_evidence := sprintf("node condition %s", [c.type]) if {
	label("irq_skewed") != "true"
	not freeze_skew_label
	some c in object.get(input.node, "conditions", [])
	c.type in freeze_cfg.skew_conditions
	c.status == "True"
}

freeze_skew_label if {
	some k in freeze_cfg.skew_labels
	object.get(object.get(input.node, "labels", {}), k, "") == "true"
}

freeze_cause := object.get(signal_labels, "cause", object.get(signal_labels, "event_type", object.get(signal_labels, "condition", "freeze")))

decisions contains {
	"action": "irqbalance.restart",
	"params": {},
	"risk": "low",
	"reason": sprintf("VM freeze (%s) left the NIC IRQs skewed (%s); restarting irqbalance", [freeze_cause, freeze_skew_evidence]),
} if {
	input.signal.kind == "vm_freeze"
	input.signal.status == "firing"
	freeze_skew_evidence
	not succeeded("irqbalance.restart", freeze_cfg.restart_window_seconds)
}

decisions contains {
	"action": "irqbalance.restart",
	"params": {},
	"risk": "low",
	"reason": sprintf("VM freeze (%s): no node facts say whether it left the NIC IRQs skewed; restarting irqbalance, which spreads them again if it did", [freeze_cause]),
} if {
	input.signal.kind == "vm_freeze"
	input.signal.status == "firing"
	not object.get(input.node, "known", false)
	not label("irq_skewed") in {"true", "false"}
	not succeeded("irqbalance.restart", freeze_cfg.restart_window_seconds)
}
