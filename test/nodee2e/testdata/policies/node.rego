# A fixed policy for the node executors' end-to-end test: packet drops caused by softirq
# load on one CPU turn RPS on for the device named in the alert; when the alert
# resolves, RPS goes back off.
package remedy

decisions contains {
	"action": "nic.rps",
	"params": {"interface": input.signal.labels.device, "cpus": "3"},
	"risk": "low",
	"reason": "spread receive processing over CPUs 0-1",
} if {
	input.signal.status == "firing"
	input.signal.kind == "packet_drops"
	input.signal.labels.cause == "softirq"
}

decisions contains {
	"action": "nic.rps",
	"params": {"interface": input.signal.labels.device, "cpus": "0"},
	"risk": "low",
	"reason": "drops resolved: RPS back off",
} if {
	input.signal.status == "resolved"
	input.signal.kind == "packet_drops"
	input.signal.labels.cause == "softirq"
}
