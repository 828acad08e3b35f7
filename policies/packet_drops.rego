# Packet drops, fixed by cause, because each cause has its own fix:
#
#   ring_overflow     the NIC ran out of rx descriptors   nic.ring to the device maximum
#                     ... on a NIC with fewer queues      nic.channels up to the CPUs
#                         than it and the CPUs allow
#   too_few_queues    (alert rules that say so)           nic.channels
#   backlog_overflow  a CPU's input backlog was full      sysctl.set netdev_max_backlog
#   budget_exhausted  NAPI polling ran out of budget      sysctl.set netdev_budget(_usecs)
#   softirq_single_cpu one CPU does all softirq work      nic.rps over every CPU
#   dropped           ... on a single-queue NIC           nic.rps over every CPU
#
# When drops persist after remedy already worked on the node within the persist window
# (a VM freeze remedy, or escalate_after_fixes drop fixes), local tuning is over: the node
# is cordoned and its workloads migrated, both high risk and waiting for approval.
#
# Signal: kind packet_drops; labels cause, iface or device (absent for the softnet
# causes); values drops_per_second or squeezes_per_second.
package remedy

drops_cfg := data.remedy.config.packet_drops

# Alert rules may use short cause names.
drops_cause := object.get(data.remedy.config.packet_drops.cause_aliases, label("cause"), label("cause"))

drops_iface := iface

drops_firing if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	not drops_below_threshold
}

drops_below_threshold if measure("drops_per_second") < drops_cfg.min_drops_per_second

drops_below_threshold if measure("squeezes_per_second") < drops_cfg.min_squeezes_per_second

# The fixes the library makes for drops; the history counts them.
drop_fixes := {"nic.ring", "nic.channels", "nic.rps", "nic.rfs", "nic.tune", "sysctl.set", "irqbalance.restart", "irq.spread"}

drop_fixes_done := [h |
	some h in input.history
	h.type == "action.result"
	h.action in drop_fixes
	h.outcome in data.remedy.config.success_outcomes
	age_ns(h.time) <= drops_cfg.persist_window_seconds * 1000000000
]

drops_persist_why := "after a VM freeze remedy" if succeeded_for("vm_freeze", drops_cfg.persist_window_seconds)

drops_persist_why := sprintf("after %d fixes", [count(drop_fixes_done)]) if {
	not succeeded_for("vm_freeze", drops_cfg.persist_window_seconds)
	count(drop_fixes_done) >= drops_cfg.escalate_after_fixes
}

drops_persist if drops_persist_why

drops_local if {
	drops_firing
	not drops_persist
}

drops_what := sprintf("%s drops (%s)", [drops_iface, drops_cause]) if drops_iface != ""

else := sprintf("softnet drops (%s)", [drops_cause])

# nic_facts is what the node facts know of the signal's interface.
nic_facts := object.get(object.get(input.node, "nics", {}), drops_iface, {})

# queues_wanted is how many combined channels the NIC should have: one per CPU, at most
# the device maximum.
queues_wanted := min([nic_facts.combinedMax, cpu_count]) if cpu_count > 0

queues_wanted := nic_facts.combinedMax if cpu_count == 0

queues_short if nic_facts.combinedCurrent < queues_wanted

single_queue if nic_facts.combinedMax == 1

single_queue if nic_facts.combinedCurrent == 1

# ring_rx is the device's rx maximum capped by ring_cap; without facts, ring_cap with
# overMax "clamp" lets the executor stop at the device maximum.
ring_rx := min([nic_facts.rxRingMax, drops_cfg.ring_cap]) if nic_facts.rxRingMax > 0

else := drops_cfg.ring_cap

decisions contains {
	"action": "nic.ring",
	"params": {"interface": drops_iface, "rx": ring_rx, "overMax": "clamp"},
	"risk": "low",
	"reason": sprintf("%s: the rx ring overflows; growing it to %d descriptors", [drops_what, ring_rx]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_local
	drops_cause == "ring_overflow"
	drops_iface != ""
	not queues_short
}

decisions contains {
	"action": "nic.channels",
	"params": {"interface": drops_iface, "combined": queues_wanted},
	"risk": "low",
	"reason": sprintf("%s: %d queues where %d are possible; raising the combined channels to %d", [drops_what, nic_facts.combinedCurrent, queues_wanted, queues_wanted]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_local
	drops_cause in {"ring_overflow", "too_few_queues"}
	drops_iface != ""
	queues_short
}

backlog_value := min([drops_cfg.backlog_max, max([drops_cfg.backlog_min, drops_cfg.backlog_per_cpu * cpu_count])]) if cpu_count > 0

backlog_value := drops_cfg.backlog_default if cpu_count == 0

decisions contains {
	"action": "sysctl.set",
	"params": {"key": "net.core.netdev_max_backlog", "value": backlog_value},
	"risk": "low",
	"reason": sprintf("%s: the softnet backlog overflows; raising net.core.netdev_max_backlog to %d", [drops_what, backlog_value]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_local
	drops_cause == "backlog_overflow"
}

decisions contains {
	"action": "sysctl.set",
	"params": {"values": {"net.core.netdev_budget": drops_cfg.budget, "net.core.netdev_budget_usecs": drops_cfg.budget_usecs}},
	"risk": "low",
	"reason": sprintf("%s: NAPI polling runs out of budget; raising net.core.netdev_budget to %d and netdev_budget_usecs to %d", [drops_what, drops_cfg.budget, drops_cfg.budget_usecs]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_local
	drops_cause == "budget_exhausted"
}

decisions contains {
	"action": "nic.rps",
	"params": {"interface": drops_iface, "cpus": cpu_mask(cpu_count)},
	"risk": "low",
	"reason": sprintf("%s: one CPU does the softirq work of the interface; steering received packets to all %d CPUs", [drops_what, cpu_count]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_local
	drops_iface != ""
	cpu_count > 1
	drops_rps
}

drops_rps if drops_cause == "softirq_single_cpu"

drops_rps if {
	drops_cause == "dropped"
	single_queue
}

decisions contains {
	"action": "node.cordon",
	"params": {},
	"risk": "high",
	"requires_approval": true,
	"reason": sprintf("%s persist %s; cordoning the node%s", [drops_what, drops_persist_why, cluster_note]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_firing
	drops_persist
	cordon_allowed
}

decisions contains {
	"action": "workload.migrate",
	"params": {"maxPods": drops_cfg.migrate_max_pods, "timeout": drops_cfg.migrate_timeout},
	"risk": "high",
	"requires_approval": true,
	"reason": sprintf("%s persist %s; moving the workloads off the node%s", [drops_what, drops_persist_why, cluster_note]),
} if {
	input.signal.kind == "packet_drops"
	input.signal.status == "firing"
	drops_firing
	drops_persist
	migrate_allowed
}

# Workloads move off a node that is cordoned, or that remedy may cordon now.
migrate_allowed if cordon_allowed

migrate_allowed if input.node.unschedulable
