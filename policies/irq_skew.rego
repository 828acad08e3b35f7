# IRQ skew: a NIC's queue interrupts piled onto a few CPUs, as irqbalance left Azure nodes
# after a VM freeze (nine queue IRQs on CPUs 4 and 5, ksoftirqd/5 at 100 %, packets
# dropped). The known fix is restarting irqbalance. If the skew is back after a restart
# that succeeded within the escalation window, remedy spreads the queue IRQs itself with
# irq.spread. After an irq.spread within the window it does nothing more: a person
# should look.
#
# Signal: kind irq_skew; labels iface (or device), cpus, busiest_cpu; values spread_ratio (served
# CPUs / possible CPUs), queue_irqs, spread_cpus, possible_cpus.
package remedy

irq_skewed if {
	input.signal.kind == "irq_skew"
	firing
	not irq_balanced
}

# irq_balanced: the signal measures a spread at or above the threshold (an alert rule
# that fires on something else, or a detector with a looser setting).
irq_balanced if measure("spread_ratio") > data.remedy.config.irq_skew.max_spread_ratio

irq_window := data.remedy.config.irq_skew.escalate_window_seconds

irq_nic := iface if iface != ""

else := "NIC"

irq_where := sprintf("%s: %v queue IRQs on CPUs %s", [
	irq_nic,
	object.get(signal_values, "queue_irqs", "the"),
	object.get(signal_labels, "cpus", "few"),
])

decisions contains {
	"action": "irqbalance.restart",
	"params": {},
	"risk": "low",
	"reason": sprintf("%s only; restarting irqbalance so it spreads them again", [irq_where]),
} if {
	input.signal.kind == "irq_skew"
	input.signal.status == "firing"
	irq_skewed
	not succeeded("irqbalance.restart", irq_window)
}

decisions contains {
	"action": "irq.spread",
	"params": {"interface": iface},
	"risk": "low",
	"reason": sprintf("%s although irqbalance was restarted within %ds; spreading the queue IRQs across the CPUs", [irq_where, irq_window]),
} if {
	input.signal.kind == "irq_skew"
	input.signal.status == "firing"
	irq_skewed
	iface != ""
	succeeded("irqbalance.restart", irq_window)
	not succeeded("irq.spread", irq_window)
}
