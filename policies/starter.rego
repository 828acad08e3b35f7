# Starter policy: the smallest useful remediation set. The full library (one file per
# condition, thresholds in data.remedy.config) replaces it.
package remedy

# IRQ skew: restart irqbalance on the node so it spreads the NIC queue IRQs again.
decisions contains {
	"action": "irqbalance.restart",
	"params": {},
	"risk": "low",
	"reason": sprintf("NIC IRQs on %v CPUs only; restarting irqbalance", [object.get(input.signal.labels, "cpus", "few")]),
} if {
	input.signal.status == "firing"
	input.signal.kind == "irq_skew"
}

# Packet drops from backlog overflow: raise net.core.netdev_max_backlog.
decisions contains {
	"action": "sysctl.set",
	"params": {"key": "net.core.netdev_max_backlog", "value": 8192},
	"risk": "low",
	"reason": "softnet backlog overflow drops packets; raising netdev_max_backlog to 8192",
} if {
	input.signal.status == "firing"
	input.signal.kind == "packet_drops"
	object.get(input.signal.labels, "cause", "") == "backlog"
}
