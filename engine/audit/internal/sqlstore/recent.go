package sqlstore

import (
	"slices"
	"sync"

	"github.com/remedyhq/remedy/engine/audit"
)

// recent keeps, per node, the columns (not the detail) of the node's latest events as
// this Store committed them. It serves audit.RecentReader when the Store is the log's
// only writer (the embedded SQLite log: one remedy process): then every event after the
// head it found at open went through commit, and a node's tail answers "what happened
// on this node since seq N" without a read transaction.
type recent struct {
	mu sync.Mutex
	// floor: events at or before it may be missing from every tail (they were there
	// before the Store opened, or belonged to a tail that was dropped).
	floor int64
	head  int64 // the newest seq committed
	nodes map[string]*tail
}

type tail struct {
	from int64         // every event of the node after from is in evs
	evs  []audit.Event // ascending seq, at most perNode
}

const (
	recentPerNode = 64
	recentNodes   = 16384
)

func newRecent(head int64) *recent {
	return &recent{floor: head, head: head, nodes: map[string]*tail{}}
}

// add records committed rows (ascending seq).
func (r *recent) add(rows []audit.Event) {
	if len(rows) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range rows {
		e := rows[i]
		r.head = max(r.head, e.Seq)
		if e.Node == "" {
			continue
		}
		t := r.nodes[e.Node]
		if t == nil {
			if len(r.nodes) >= recentNodes {
				r.dropOne()
			}
			t = &tail{from: r.floor}
			r.nodes[e.Node] = t
		}
		e.Detail = nil
		if len(t.evs) == recentPerNode {
			t.from = t.evs[0].Seq
			t.evs = append(t.evs[:0], t.evs[1:]...)
		}
		t.evs = append(t.evs, e)
	}
}

// dropOne forgets an arbitrary node; from now on a node without a tail may have events
// up to the head.
func (r *recent) dropOne() {
	for n := range r.nodes {
		delete(r.nodes, n)
		break
	}
	r.floor = r.head
}

// since returns the node's events after seq after of the given types, newest first,
// and the seq up to which they are complete; ok is false when the tail does not reach
// back to after.
func (r *recent) since(node string, after int64, types []audit.Type) (evs []audit.Event, upTo int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.nodes[node]
	from := r.floor
	if t != nil {
		from = t.from
	}
	if after < from {
		return nil, 0, false
	}
	if t != nil {
		for i := len(t.evs) - 1; i >= 0 && t.evs[i].Seq > after; i-- {
			if len(types) == 0 || slices.Contains(types, t.evs[i].Type) {
				evs = append(evs, t.evs[i])
			}
		}
	}
	return evs, r.head, true
}
