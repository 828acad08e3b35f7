# Crash test policy: every tenth alert asks for an action, the rest are decided "none".
package remedy

decisions contains {
	"action": "sysctl.set",
	"params": {"key": "net.core.netdev_max_backlog", "value": 4096},
	"risk": "low",
	"reason": "crash test",
} if {
	input.signal.status == "firing"
	endswith(input.signal.fingerprint, "0")
}
