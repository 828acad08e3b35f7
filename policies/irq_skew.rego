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
	input.signal.status == "firing"
	not irq_balanced
}

# irq_balanced: the signal measures a spread at or above the threshold (an alert rule
# that fires on something else, or a detector with a looser setting).
irq_balanced if measure("spread_ratio") > data.remedy.config.irq_skew.max_spread_ratio

irq_window := data.remedy.config.irq_skew.escalate_window_seconds

irq_nic := iface if iface != ""

else := "NIC"

irq_where := sprintf("%s: %v queue IRQs on CPUs %s", irq_where_args)

# irq_where_args are what irq_where says; a reason formats them in one sprintf with its
# own text, which reads the same as "%s ..." over irq_where and costs one call less.
irq_where_args := [
	irq_nic,
	object.get(signal_values, "queue_irqs", "the"),
	object.get(signal_labels, "cpus", "few"),
]

# The restart is verified on the skewed NIC: after irqbalance settles, its queue IRQs
# must reach more CPUs than the skew threshold allows, or the result is a failure.
irq_restart_params := {"interfaces": [iface], "minCPUs": floor(cpus * data.remedy.config.irq_skew.max_spread_ratio) + 1} if {
	iface != ""
	cpus := measure("possible_cpus")
	cpus > 0
} else := {"interfaces": [iface]} if {
	iface != ""
} else := {}

# irq_restarted: a restart ran within the window, whether irqbalance then spread the
# IRQs (and the skew came back) or not (the verification failed).
irq_restarted if {
	some h in input.history

	# The action first: it rules out most entries of a long history.
	h.action == "irqbalance.restart"
	h.type == "action.result"
	h.outcome in data.remedy.config.irq_skew.restart_outcomes
	age_ns(h.time) <= irq_window * 1000000000
}

decisions contains {
	"action": "irqbalance.restart",
	"params": irq_restart_params,
	"risk": "low",
	"reason": sprintf("%s: %v queue IRQs on CPUs %s only; restarting irqbalance so it spreads them again", irq_where_args),
} if {
	input.signal.kind == "irq_skew"
	input.signal.status == "firing"
	irq_skewed
	not irq_restarted
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
	irq_restarted
	iface != ""
	not succeeded("irq.spread", irq_window)
}
