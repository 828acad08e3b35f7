package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/remedyhq/remedy/engine/audit"
)

// IncidentSchema returns the indexes audit.IncidentReader walks: per type by time; the
// signals per kind by time and the verifications per outcome by time (a list filtered by
// kind or outcome), those two partial so that the other rows' appends do not pay for them.
// They are created by their own idempotent step (EnsureIncidentIndexes), after Schema.
func IncidentSchema() []string {
	return []string{
		`CREATE INDEX IF NOT EXISTS audit_events_type_at ON audit_events(type, at, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_events_signal_kind_at ON audit_events(kind, at, seq) WHERE type = 'signal.received'`,
		`CREATE INDEX IF NOT EXISTS audit_events_verification_outcome_at ON audit_events(outcome, at, seq) WHERE type = 'verification'`,
	}
}

// EnsureIncidentIndexes creates IncidentSchema's indexes if they are missing. On an
// existing log the first run builds them (once, in one write transaction).
func (s *Store) EnsureIncidentIndexes(ctx context.Context) error {
	err := s.db.Write(ctx, func(tx Tx) error {
		for _, stmt := range IncidentSchema() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create incident indexes: %w", err)
	}
	return nil
}

var _ audit.IncidentReader = (*Store)(nil)

// Heads implements audit.IncidentReader. One index serves each shape: (node, seq) when a
// node is given (a node's events are few), the partial kind index for signals of a kind,
// the partial outcome index for verifications of an outcome, else (type, at); the other
// columns are compared as expressions so that no other index is chosen. The type is
// written into the statement (it is one of audit.Types()): a partial index serves only a
// statement whose text implies its WHERE.
func (s *Store) Heads(ctx context.Context, f audit.HeadFilter) ([]audit.Event, error) {
	if f.Type == "" {
		return nil, fmt.Errorf("audit heads: %w", audit.ErrNoType)
	}
	if !slices.Contains(audit.Types(), f.Type) {
		return nil, fmt.Errorf("audit heads: unknown event type %q", f.Type)
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", s.ph(len(args))))
	}
	typ := "'" + string(f.Type) + "'"
	kind, outcome := "(kind || '') = ?", "(outcome || '') = ?"
	switch {
	case f.Node != "":
		add("node = ?", f.Node)
		where = append(where, "(type || '') = "+typ)
	case f.Kind != "" && f.Type == audit.SignalReceived:
		where = append(where, "type = "+typ)
		kind = "kind = ?"
	case f.Outcome != "" && f.Type == audit.Verification:
		where = append(where, "type = "+typ)
		outcome = "outcome = ?"
	default:
		where = append(where, "type = "+typ)
	}
	if f.Kind != "" {
		add(kind, f.Kind)
	}
	if f.Outcome != "" {
		add(outcome, f.Outcome)
	}
	if !f.Since.IsZero() {
		add("at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.UnixNano())
	}
	if !f.Before.IsZero() {
		// The first bound is what the index range uses; the second breaks ties in time.
		at := f.Before.UnixNano()
		add("at <= ?", at)
		args = append(args, at, f.BeforeSeq)
		where = append(where, "(at < "+s.ph(len(args)-1)+" OR seq < "+s.ph(len(args))+")")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = audit.DefaultLimit
	}
	q := "SELECT " + selectColsWithoutDetail + " FROM audit_events WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY at DESC, seq DESC LIMIT %d", limit)
	evs, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit heads: %w", err)
	}
	return evs, nil
}

// ByCorrelation implements audit.IncidentReader: the (correlation_id, seq) index, one
// statement per keyChunk incidents.
func (s *Store) ByCorrelation(ctx context.Context, ids []string, types ...audit.Type) ([]audit.Event, error) {
	var out []audit.Event
	ids = slices.Compact(slices.Sorted(slices.Values(ids))) // an id twice would return its events twice
	for len(ids) > 0 {
		n := min(len(ids), keyChunk)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		args = padKeys(args)
		q := "SELECT " + selectColsWithoutDetail + " FROM audit_events WHERE correlation_id IN (" + s.list(1, len(args)) + ")"
		if len(types) > 0 {
			q += " AND (type || '') IN (" + s.list(len(args)+1, len(types)) + ")"
			for _, t := range types {
				args = append(args, string(t))
			}
		}
		evs, err := s.query(ctx, q+" ORDER BY seq", args...)
		if err != nil {
			return nil, fmt.Errorf("audit by correlation: %w", err)
		}
		out = append(out, evs...)
		ids = ids[n:]
	}
	// Chunks come back each in seq order; merge them into one.
	slices.SortFunc(out, func(a, b audit.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}
