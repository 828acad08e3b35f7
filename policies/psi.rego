# PSI: sustained node-level CPU or memory contention (tasks stalled waiting for a CPU or
# for memory) cordons the node so nothing new lands on it, and moves the pods under the
# highest pressure elsewhere. Both are high risk and wait for approval.
#
# Not acted on: pressure below the thresholds (a pod at 150 % of its request with PSI
# near 0 is using idle capacity, not starving); pressure that CFS-quota throttling
# explains (raise the limits, moving the pod does not help); io pressure (moving load does
# not fix a slow disk); pressure that has not lasted.
#
# Signal: kind psi; labels scope (node, pod), resource (cpu, memory, io), cause
# (contention, throttling), pod (namespace/name) or top_pods ("ns/a,ns/b"); values
# some_percent, full_percent, some_avg60, pods_throttled_percent.
package remedy

psi_cfg := data.remedy.config.psi

psi_resource := label("resource")

psi_scope := object.get(signal_labels, "scope", "node")

psi_some_limit := object.get(psi_cfg, sprintf("%s_some_percent", [psi_resource]), 0)

psi_full_limit := object.get(psi_cfg, sprintf("%s_full_percent", [psi_resource]), 0)

psi_contention if {
	input.signal.kind == "psi"
	input.signal.status == "firing"
	psi_resource in {"cpu", "memory"}
	label("cause") != "throttling"
	not psi_throttling
	psi_over
	psi_sustained
}

# psi_over names the line over its threshold.
psi_over := sprintf("some %v%%", [measure("some_percent")]) if {
	psi_some_limit > 0
	measure("some_percent") >= psi_some_limit
}

psi_over := sprintf("full %v%%", [measure("full_percent")]) if {
	not measure("some_percent") >= psi_some_limit
	psi_full_limit > 0
	measure("full_percent") >= psi_full_limit
}

psi_sustained if age_ns(input.signal.startsAt) >= psi_cfg.sustained_seconds * 1000000000

psi_sustained if measure("some_avg60") >= psi_some_limit

# psi_throttling: the pods' CFS throttling explains the node's CPU stall.
psi_throttling if {
	psi_resource == "cpu"
	measure("pods_throttled_percent") >= psi_cfg.throttle_share * measure("some_percent")
}

psi_what := sprintf("%s %s pressure %s", [psi_scope, psi_resource, psi_over])

# psi_pods are the pods to move, in order: those the alert lists, or the pod it is about.
psi_pods := [p | some p in split(label("top_pods"), ","); p != ""] if label("top_pods") != ""

psi_pods := [label("pod")] if {
	label("top_pods") == ""
	contains(label("pod"), "/")
}

decisions contains {
	"action": "node.cordon",
	"params": {},
	"risk": "high",
	"requires_approval": true,
	"reason": sprintf("sustained %s; cordoning the node so no new pods land on it%s", [psi_what, cluster_note]),
} if {
	input.signal.kind == "psi"
	input.signal.status == "firing"
	psi_contention
	psi_scope == "node"
	cordon_allowed
}

decisions contains {
	"action": "workload.migrate",
	"params": {"pods": psi_pods, "maxPods": psi_cfg.migrate_max_pods, "timeout": psi_cfg.migrate_timeout},
	"risk": "high",
	"requires_approval": true,
	"reason": sprintf("sustained %s; moving %s to less busy nodes%s", [psi_what, concat(", ", psi_pods), cluster_note]),
} if {
	input.signal.kind == "psi"
	input.signal.status == "firing"
	psi_contention
	count(psi_pods) > 0
}

# The runbook's end: the pressure that made remedy cordon the node has resolved, so the
# node takes pods again. Only a node remedy cordoned (node.cordonedBy "remedy"); the
# guards refuse an uncordon of a node a person cordoned in any case.
decisions contains {
	"action": "node.uncordon",
	"params": {},
	"risk": "low",
	"reason": sprintf("node %s pressure resolved; uncordoning the node remedy cordoned", [psi_resource]),
} if {
	input.signal.kind == "psi"
	input.signal.status == "resolved"
	psi_scope == "node"
	object.get(input.node, "cordonedBy", "") == "remedy"
}
