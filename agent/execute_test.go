package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent/journal"
	"github.com/remedyhq/remedy/executors"
)

type once struct{ runs int }

func (o *once) Action() string                    { return "test.once" }
func (o *once) CheckParams(json.RawMessage) error { return nil }
func (o *once) Execute(_ context.Context, r executors.Request) executors.Result {
	o.runs++
	return executors.Finish(r, time.Now(), executors.Result{Status: executors.Succeeded})
}

// An agent killed mid-action left a "started" entry without a result: the action is
// retried once; killed again, it is reported failed and not run a third time.
func TestExecuteAfterAgentDiedMidAction(t *testing.T) {
	for _, tc := range []struct {
		starts   int
		wantRuns int
		want     executors.Status
		wantMsg  string
	}{
		{0, 1, executors.Succeeded, ""},
		{1, 1, executors.Succeeded, ""},
		{2, 0, executors.Failed, "agent stopped during this action twice; not retrying"},
	} {
		dir := t.TempDir()
		j, err := journal.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		for range tc.starts {
			if err := j.Write(journal.Entry{ID: "x", Started: true}); err != nil {
				t.Fatal(err)
			}
		}
		ex := &once{}
		reg := executors.NewRegistry()
		_ = reg.Add(executors.OnNode, ex)
		a := &Agent{o: Options{Node: "n", Registry: reg, ActionTimeout: time.Second, Now: time.Now}, log: discard(), j: j}
		res, err := a.Execute(context.Background(), executors.Request{ID: "x", Action: "test.once", Node: "n"})
		if err != nil {
			t.Fatal(err)
		}
		if ex.runs != tc.wantRuns || res.Status != tc.want || res.Message != tc.wantMsg {
			t.Errorf("after %d starts: runs=%d result=%+v", tc.starts, ex.runs, res)
		}
		// Whatever happened, a redelivery now re-reports it without running again.
		again, _ := a.Execute(context.Background(), executors.Request{ID: "x", Action: "test.once", Node: "n"})
		if again.Status != res.Status || ex.runs != tc.wantRuns {
			t.Errorf("after %d starts: redelivery ran again or changed the result: %+v", tc.starts, again)
		}
		j.Close()
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
