package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/audit"
)

// TestTableShowsReasons: the DETAIL column carries why a human approved or rejected, why
// the guards held or refused an action, why dispatch was paused, as JSON output does.
func TestTableShowsReasons(t *testing.T) {
	detail := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	held := func(outcome, reason, msg string) json.RawMessage {
		return detail(map[string]any{"verdict": map[string]any{"outcome": outcome, "reason": reason, "message": msg},
			"decision": map[string]any{"action": "node.cordon", "reason": "vm frozen"}})
	}
	for _, tc := range []struct {
		ev   audit.Event
		want string
	}{
		{audit.Event{Type: audit.ApprovalRequested, Detail: held("hold", "risk", "risk high needs approval")}, "risk high needs approval; policy: vm frozen"},
		{audit.Event{Type: audit.GuardRefused, Detail: held("refuse", "paused", "")}, "paused; policy: vm frozen"},
		{audit.Event{Type: audit.ApprovalGranted, Detail: detail(map[string]any{"reason": "checked the node", "vote": 1, "of": 2})}, "checked the node; vote 1 of 2"},
		{audit.Event{Type: audit.ApprovalRejected, Detail: detail(map[string]any{"reason": "not during the release"})}, "not during the release"},
		{audit.Event{Type: audit.ApprovalExpired, Detail: detail(map[string]any{"reason": "no decision within 1h0m0s"})}, "no decision within 1h0m0s"},
		{audit.Event{Type: audit.Paused, Detail: detail(map[string]any{"reason": "incident 7"})}, "incident 7"},
		{audit.Event{Type: audit.Resumed, Detail: detail(map[string]any{"reason": "storm over", "kind": "irq_skew"})}, "storm over; kind irq_skew"},
		{audit.Event{Type: audit.Verification, Outcome: audit.OutcomeNotFixed, Detail: detail(map[string]any{"window": "5m0s", "escalated": "c2"})}, "window 5m0s; escalated as c2"},
	} {
		if got := Summary(tc.ev); got != tc.want {
			t.Errorf("%s: Summary = %q, want %q", tc.ev.Type, got, tc.want)
		}
		var b bytes.Buffer
		if err := Table(&b, []audit.Event{tc.ev}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: table lacks %q:\n%s", tc.ev.Type, tc.want, b.String())
		}
	}
}
