package remedy_test

import data.remedy

test_firing_drops_held if {
	some d in remedy.decisions with input as {"signal": {"status": "firing", "kind": "packet_drops"}}
	d.requires_approval
}
