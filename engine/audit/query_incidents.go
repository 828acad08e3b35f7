package audit

import (
	"context"
	"fmt"
	"sort"
)

// QueryIncidents is Query, except that a Kind filter selects whole incidents: the events
// matching f, and besides them every event matching f's other fields whose incident (by
// correlation id) has an event of that kind. The rows an incident's kind is not written on
// (action.dispatched, action.result, verification, approvals) stay with their incident, so
// `remedy audit query --kind irq_skew` shows what was done about irq_skew, not only what
// was decided. The incidents are those of the latest f.Limit kind rows in f's time range.
func QueryIncidents(ctx context.Context, q Querier, f Filter) ([]Event, error) {
	evs, err := q.Query(ctx, f)
	if err != nil || f.Kind == "" {
		return evs, err
	}
	kinds, err := q.Query(ctx, Filter{Kind: f.Kind, Since: f.Since, Until: f.Until, WithoutDetail: true, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	for _, e := range evs {
		seen[e.Seq] = true
	}
	ids := map[string]bool{}
	for _, k := range kinds {
		id := k.CorrelationID
		if id == "" || ids[id] || (f.CorrelationID != "" && id != f.CorrelationID) {
			continue
		}
		ids[id] = true
		g := f
		g.Kind, g.CorrelationID = "", id
		more, err := q.Query(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("incident %s: %w", id, err)
		}
		for _, e := range more {
			if !seen[e.Seq] {
				seen[e.Seq] = true
				evs = append(evs, e)
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if f.Ascending {
			return evs[i].Seq < evs[j].Seq
		}
		return evs[i].Seq > evs[j].Seq
	})
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	if len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, nil
}
