# A fixed policy for the end-to-end tests, so that they do not change with the library.
package remedy

decisions contains {
	"action": "sysctl.set",
	"params": {"key": "net.core.netdev_max_backlog", "value": 4096},
	"risk": "low",
	"reason": "backlog overflow",
} if {
	input.signal.status == "firing"
	input.signal.kind == "packet_drops"
}
