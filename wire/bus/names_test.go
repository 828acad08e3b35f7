package bus

import (
	"strings"
	"testing"
)

// A node's consumer name must fit JetStream's 255 characters: agent-<token>.
func TestCheckNode(t *testing.T) {
	for _, tc := range []struct {
		node string
		ok   bool
	}{
		{"node-1", true},
		{strings.Repeat("a", 249), true},
		{strings.Repeat("a", 250), false},
		{strings.Repeat("a_", 40), true},  // 1 + 40*4 = 161 characters escaped
		{strings.Repeat("a_", 70), false}, // 281
		{"", false},
	} {
		err := CheckNode(tc.node)
		if (err == nil) != tc.ok {
			t.Errorf("CheckNode(%d characters %.12q…) = %v, want ok %v", len(tc.node), tc.node, err, tc.ok)
		}
		if err == nil && len(AgentConsumer(tc.node)) > MaxNameLen {
			t.Errorf("%q passed with a %d-character consumer name", tc.node, len(AgentConsumer(tc.node)))
		}
	}
	const want = `node name "` // the message names the node and both lengths
	if err := CheckNode(strings.Repeat("a", 250)); err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "256 characters, JetStream allows 255") {
		t.Errorf("message %v", err)
	}
}
