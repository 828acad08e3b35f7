# Helpers the condition files share: the signal's labels and measurements, the clock
# and the node's action history. Every rule adds to one set, data.remedy.decisions.
package remedy

# firing is true for a firing signal; a resolved signal closes its incident (and may
# undo what remedy did for it: psi.rego uncordons).
firing if input.signal.status == "firing"

signal_labels := object.get(input.signal, "labels", {})

signal_values := object.get(input.signal, "values", {})

# label(k) is the signal's label k, or "" when it has none.
label(k) := object.get(signal_labels, k, "")

# measure(k) is the signal's measurement k. An Alertmanager alert carries one value (its
# "value" annotation); its rule names what that value is with the label value_name, or
# config.alert_values names it per kind.
measure(k) := v if {
	v := signal_values[k]
} else := signal_values.value if {
	alert_value_name == k
}

alert_value_name := signal_labels.value_name

alert_value_name := data.remedy.config.alert_values[input.signal.kind] if not signal_labels.value_name

# iface is the network interface a signal is about: the agent's iface label, or
# node_exporter's device label in alert rules.
iface := object.get(signal_labels, "iface", "") if object.get(signal_labels, "iface", "") != ""

else := object.get(signal_labels, "device", "")

# measured(k) is true when the signal carries measurement k.
measured(k) if measure(k)

# now_ns is the evaluation time the engine passed in (input.now).
now_ns := time.parse_rfc3339_ns(input.now)

# age_ns(t) is how long ago RFC 3339 time t was.
age_ns(t) := now_ns - time.parse_rfc3339_ns(t)

# succeeded(action, window) is true when action succeeded on this node within window
# seconds before now.
succeeded(action, window) if {
	some h in input.history
	h.action == action
	h.type == "action.result"
	h.outcome in data.remedy.config.success_outcomes
	age_ns(h.time) <= window * 1000000000
}

# succeeded_for(kind, window) is true when any action taken for a signal of kind
# succeeded on this node within window seconds before now.
succeeded_for(kind, window) if {
	some h in input.history
	h.kind == kind
	h.type == "action.result"
	h.outcome in data.remedy.config.success_outcomes
	age_ns(h.time) <= window * 1000000000
}

# cpu_count is the node's online CPU count: the node facts' cpus, else the signal's
# online_cpus measurement (the agent reports it; without a cluster there are no node
# facts), else 0.
default cpu_count := 0

cpu_count := n if {
	n := object.get(input, ["node", "cpus"], 0)
	n > 0
} else := n if {
	n := measure("online_cpus")
	n > 0
}

# cpu_mask(n) is the kernel's hex mask of CPUs 0..n-1 ("f", "ff,ffffffff").
cpu_mask(n) := concat(",", array.concat(head, tail)) if {
	part := n % 32
	full := (n - part) / 32
	head := [sprintf("%x", [bits.lsh(1, part) - 1]) | part > 0]
	tail := ["ffffffff" | some i in numbers.range(1, full); i >= 1; i <= full]
}

# in_cluster is true when the engine runs with a Kubernetes cluster: its facts count the
# cluster's nodes. On the embedded default (no --kubeconfig, no --in-cluster) the input
# has no node facts and input.cluster.nodes is 0; a cluster action decided there is
# recorded as "unavailable", never run.
in_cluster if object.get(input, ["cluster", "nodes"], 0) > 0

# cluster_note ends the reason of a cluster action: empty in a cluster, else it says the
# action will only be recorded.
default cluster_note := " (no Kubernetes cluster: recorded, not run)"

cluster_note := "" if in_cluster

# cordon_allowed is true while the cluster has room for one more cordoned node: at most
# max_cordoned_fraction of the nodes, at least one.
cordon_allowed if {
	not input.node.unschedulable
	limit := max([1, floor(data.remedy.config.max_cordoned_fraction * object.get(input, ["cluster", "nodes"], 0))])
	object.get(input, ["cluster", "cordoned"], 0) < limit
}
