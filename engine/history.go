package engine

import (
	"context"
	"sync"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// historyLimit is the most entries of a node's history the policy sees.
const historyLimit = 200

// historyTypes are the events of a node's history the policy sees.
var historyTypes = []audit.Type{audit.ActionPlanned, audit.ActionResult, audit.ActionRejected, audit.GuardRefused, audit.Verification}

// historyCache keeps each node's recent history as last read from the audit log, with
// the seq it was read up to. The log is append-only and seqs grow, so reading a node's
// history again only needs the events after that seq: one short index range instead of
// every event of the node. Events appended by anyone (another replica, the approval
// service) are read like the engine's own.
type historyCache struct {
	mu    sync.Mutex
	nodes map[string]*nodeHistory
}

type nodeHistory struct {
	mark    int64          // the seq the node's events were read up to
	entries []historyEntry // newest first, at most historyLimit
}

// maxHistoryNodes bounds the cache; past it an arbitrary node is forgotten (and read
// in full again when it next has a signal).
const maxHistoryNodes = 4096

func (c *historyCache) get(node string) (int64, []historyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.nodes[node]
	if h == nil {
		return 0, nil
	}
	return h.mark, h.entries
}

// add merges events read after seq from (with snapshot, the node's history as it was
// cached at from) into the node's history and returns it, newest first, without entries
// before since. floor is a seq committed before the read began: every event up to it
// was visible to the read, so the node's history is complete up to max(floor, what the
// read found). Another reader may have merged the same events meanwhile: only those
// after the cached mark are added.
func (c *historyCache) add(node string, from int64, snapshot []historyEntry, floor int64, evs []audit.Event, since time.Time) []historyEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes == nil {
		c.nodes = map[string]*nodeHistory{}
	}
	base := c.nodes[node]
	if base == nil || base.mark < from {
		base = &nodeHistory{mark: from, entries: snapshot} // evicted meanwhile
	}
	var fresh []historyEntry
	mark := max(base.mark, floor)
	for _, ev := range evs { // newest first
		if ev.Seq <= base.mark {
			break
		}
		mark = max(mark, ev.Seq)
		fresh = append(fresh, historyEntry{seq: ev.Seq, Time: ev.Time, Type: string(ev.Type), Action: ev.Action,
			ActionID: ev.ActionID, Outcome: ev.Outcome, Kind: ev.Kind, CorrelationID: ev.CorrelationID})
	}
	merged := make([]historyEntry, 0, min(historyLimit, len(fresh)+len(base.entries)))
	for _, list := range [][]historyEntry{fresh, base.entries} {
		for _, en := range list {
			if len(merged) == historyLimit || en.Time.Before(since) {
				break
			}
			merged = append(merged, en)
		}
	}
	if len(c.nodes) >= maxHistoryNodes && c.nodes[node] == nil {
		for n := range c.nodes {
			delete(c.nodes, n)
			break
		}
	}
	c.nodes[node] = &nodeHistory{mark: mark, entries: merged}
	return merged
}

// history returns a node's action history within the window, newest first: the cached
// part, and what the audit log holds after it.
func (e *Engine) history(ctx context.Context, node string, now time.Time) ([]historyEntry, error) {
	since := now.Add(-e.o.HistoryWindow)
	floor := e.committed.Load()
	mark, snapshot := e.hist.get(node)
	if r, ok := e.o.Store.(audit.RecentReader); ok {
		if evs, upTo, ok := r.Recent(node, mark, historyTypes); ok {
			return e.hist.add(node, mark, snapshot, upTo, evs, since), nil
		}
	}
	evs, err := e.o.Store.Query(ctx, audit.Filter{Node: node, Types: historyTypes, Since: since, AfterSeq: mark,
		Limit: historyLimit, WithoutDetail: true})
	if err != nil {
		return nil, err
	}
	return e.hist.add(node, mark, snapshot, floor, evs, since), nil
}
