package audit

import (
	"context"
	"time"
)

// HeadFilter selects the events that stand for incidents in a list: one type (the
// first signal of an incident, its verification, a refusal ...) walked newest first by
// time through an index, so that a page of incidents costs a page of index entries, not
// a scan of the log. Zero fields match everything.
type HeadFilter struct {
	Type    Type
	Node    string
	Kind    string
	Outcome string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Before is the paging cursor: only events strictly older than (Before, BeforeSeq)
	// in (time, seq) order. Zero means from the newest.
	Before    time.Time
	BeforeSeq int64
	// Limit caps the result; 0 means DefaultLimit.
	Limit int
}

// IncidentReader is a store that serves the incidents page and the effectiveness
// report (engine/incident) with indexed queries. Both SQL stores implement it; the
// indexes it needs are created by a separate, idempotent schema step.
type IncidentReader interface {
	// Heads returns events of f.Type matching f, without detail, newest first by
	// (time, seq).
	Heads(ctx context.Context, f HeadFilter) ([]Event, error)
	// ByCorrelation returns the events of the given incidents, without detail, oldest
	// first (by seq): every event, or only those of the given types.
	ByCorrelation(ctx context.Context, correlationIDs []string, types ...Type) ([]Event, error)
}
