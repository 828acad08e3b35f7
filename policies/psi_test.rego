package remedy.psi_test

import data.remedy

node_cpu := {
	"signal": {
		"kind": "psi", "status": "firing", "node": "aks-4",
		"startsAt": "2026-01-01T00:50:00Z",
		"labels": {"scope": "node", "resource": "cpu", "line": "some", "cause": "contention", "top_pods": "shop/web-1,shop/web-2"},
		"values": {"some_percent": 55, "some_avg60": 48, "pods_throttled_percent": 3},
	},
	"node": {"name": "aks-4"},
	"cluster": {"nodes": 10, "cordoned": 0},
	"history": [],
	"now": "2026-01-01T01:00:00Z",
}

# A pod at 150 % of its CPU request on a node with idle CPUs: PSI near 0.
over_request := object.union(node_cpu, {"signal": {
	"labels": {"scope": "pod", "pod": "shop/batch-1", "top_pods": ""},
	"values": {"some_percent": 0.4, "some_avg60": 0.3, "usage_over_request": 1.5},
}})

# The node's CPU stall is the pods' CFS throttling at their limits.
throttling_only := object.union(node_cpu, {"signal": {"values": {"pods_throttled_percent": 50}}})

pod_throttled := object.union(node_cpu, {"signal": {"labels": {"scope": "pod", "pod": "shop/web-1", "top_pods": "", "cause": "throttling"}}})

pod_contended := object.union(node_cpu, {"signal": {"labels": {"scope": "pod", "pod": "shop/web-1", "top_pods": ""}}})

# Just started, and the 60 s average is still low: not sustained.
fresh := object.union(node_cpu, {"signal": {"startsAt": "2026-01-01T00:59:00Z", "values": {"some_avg60": 10}}})

memory_full := object.union(node_cpu, {"signal": {
	"labels": {"resource": "memory", "line": "full", "top_pods": ""},
	"values": {"some_percent": 12, "full_percent": 11, "some_avg60": 12},
}})

io := object.union(node_cpu, {"signal": {"labels": {"resource": "io"}, "values": {"some_percent": 90}}})

test_sustained_node_cpu_contention_cordons_and_migrates if {
	ds := remedy.decisions with input as node_cpu
	ds == {
		{
			"action": "node.cordon", "params": {}, "risk": "high", "requires_approval": true,
			"reason": "sustained node cpu pressure some 55%; cordoning the node so no new pods land on it",
		},
		{
			"action": "workload.migrate", "params": {"pods": ["shop/web-1", "shop/web-2"], "maxPods": 3, "timeout": "5m"},
			"risk": "high", "requires_approval": true,
			"reason": "sustained node cpu pressure some 55%; moving shop/web-1, shop/web-2 to less busy nodes",
		},
	}
}

test_150_percent_of_request_with_psi_near_0_does_nothing if {
	count(remedy.decisions) == 0 with input as over_request
}

test_throttling_only_pressure_does_not_cordon if {
	count(remedy.decisions) == 0 with input as throttling_only
	count(remedy.decisions) == 0 with input as pod_throttled
}

test_contended_pod_migrates_without_cordon if {
	{d.action | some d in remedy.decisions} == {"workload.migrate"} with input as pod_contended
}

test_fresh_pressure_waits if {
	count(remedy.decisions) == 0 with input as fresh
}

test_sustained_by_the_kernel_average if {
	{d.action | some d in remedy.decisions} == {"node.cordon", "workload.migrate"} with input as object.union(fresh, {"signal": {"values": {"some_avg60": 45}}})
}

test_memory_full_pressure_cordons if {
	[d.reason | some d in remedy.decisions] == ["sustained node memory pressure full 11%; cordoning the node so no new pods land on it"] with input as memory_full
}

test_io_pressure_is_not_acted_on if {
	count(remedy.decisions) == 0 with input as io
}

test_no_second_cordon_over_the_cluster_budget if {
	{d.action | some d in remedy.decisions} == {"workload.migrate"} with input as object.union(node_cpu, {"cluster": {"cordoned": 1}})
}

# The shape of engine/demo/samples/psi.json: no scope (node-level), the some
# percentage as the alert's value.
alert := {
	"signal": {
		"kind": "psi", "status": "firing", "node": "aks-nodepool1-00000004",
		"startsAt": "2026-01-01T00:40:00Z",
		"labels": {"alertname": "NodeCPUPressureHigh", "resource": "cpu"},
		"values": {"value": 42},
	},
	"node": {"name": "aks-nodepool1-00000004"},
	"cluster": {"nodes": 4, "cordoned": 0},
	"now": "2026-01-01T01:00:00Z",
}

test_alertmanager_node_pressure_alert_cordons if {
	[d.reason | some d in remedy.decisions] == ["sustained node cpu pressure some 42%; cordoning the node so no new pods land on it"] with input as alert
}

# The embedded default: no cluster. The cordon is still decided (and still needs an
# approval); its reason says it will only be recorded.
test_without_a_cluster_the_cordon_is_recorded_only if {
	inp := object.union(json.remove(node_cpu, ["cluster"]), {"node": {"known": false}})
	[d.reason | some d in remedy.decisions; d.action == "node.cordon"] == ["sustained node cpu pressure some 55%; cordoning the node so no new pods land on it (no Kubernetes cluster: recorded, not run)"] with input as inp
	ds := remedy.decisions with input as inp
	count(ds) == 2
	every d in ds {
		d.requires_approval == true
	}
}

resolved_on_cordoned := object.union(node_cpu, {"signal": {"status": "resolved"}, "node": {"unschedulable": true, "cordonedBy": "remedy"}})

test_resolved_pressure_uncordons_what_remedy_cordoned if {
	ds := remedy.decisions with input as resolved_on_cordoned
	ds == {{
		"action": "node.uncordon", "params": {}, "risk": "low",
		"reason": "node cpu pressure resolved; uncordoning the node remedy cordoned",
	}}
}

test_resolved_pressure_leaves_a_persons_cordon if {
	count(remedy.decisions) == 0 with input as object.union(resolved_on_cordoned, {"node": {"cordonedBy": "other"}})
}

test_resolved_pressure_on_a_schedulable_node_does_nothing if {
	count(remedy.decisions) == 0 with input as object.union(node_cpu, {"signal": {"status": "resolved"}})
}
