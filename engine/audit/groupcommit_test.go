package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Urgent appends (intake) go into the next commit ahead of deferrable ones (decisions),
// which fill a commit only up to a bound while urgent ones wait.
func TestGroupCommitterPutsUrgentFirst(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var commits [][]string // the event types of each commit, in order
	g := audit.NewGroupCommitter(2048, func(_ context.Context, batches []audit.Batch) ([]audit.Committed, []error, error) {
		var types []string
		out := make([]audit.Committed, len(batches))
		for i, b := range batches {
			out[i].Inserted = make([]bool, len(b.Events))
			for _, e := range b.Events {
				types = append(types, string(e.Type))
			}
		}
		mu.Lock()
		commits = append(commits, types)
		first := len(commits) == 1
		mu.Unlock()
		if first {
			<-release // hold the first commit while the others queue
		}
		return out, nil, nil
	})
	defer g.Close()
	bg := context.Background()
	var wg sync.WaitGroup
	appendN := func(deferred bool, typ audit.Type, n int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := g.Commit(bg, audit.Batch{Events: []audit.Event{{Type: typ}}, Deferred: deferred}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	appendN(false, "first", 1)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(commits) == 1 })
	appendN(true, "decision", 600)
	appendN(false, "signal", 5)
	time.Sleep(200 * time.Millisecond) // let every append queue
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	second := commits[1]
	signals, decisions := 0, 0
	for _, typ := range second {
		switch typ {
		case "signal":
			signals++
		case "decision":
			decisions++
		}
	}
	if signals != 5 {
		t.Fatalf("the commit after the held one has %d of 5 urgent appends: %v", signals, second)
	}
	if decisions > 256 {
		t.Fatalf("the commit with urgent appends carries %d deferrable events, want at most 256", decisions)
	}
	total := 0
	for _, c := range commits {
		total += len(c)
	}
	if total != 606 {
		t.Fatalf("%d events committed, want 606", total)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}
