# Every firing packet_drops signal asks for a change a person must approve.
package remedy

decisions contains {
	"action": "sysctl.set",
	"params": {"key": "net.core.netdev_max_backlog", "value": 4096},
	"risk": "high",
	"requires_approval": true,
	"reason": "backlog overflow",
} if {
	input.signal.status == "firing"
	input.signal.kind == "packet_drops"
}
