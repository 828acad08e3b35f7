package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Follow calls fn for every event matching f with a seq above f.AfterSeq, oldest first,
// then polls q every interval for new ones until ctx ends or fn fails. Seqs are committed
// in order by every store, so polling by seq misses nothing.
func Follow(ctx context.Context, q Querier, f Filter, every time.Duration, fn func(Event) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var ferr error
		err := Walk(ctx, q, f, func(e *Event) bool {
			f.AfterSeq = e.Seq
			ferr = fn(*e)
			return ferr == nil
		})
		if err != nil {
			return fmt.Errorf("audit follow: %w", err)
		}
		if ferr != nil {
			return ferr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Timeline returns one incident's events, oldest first: signal, decision, approval,
// execution, verification.
func Timeline(ctx context.Context, q Querier, correlationID string) ([]Event, error) {
	var out []Event
	err := Walk(ctx, q, Filter{CorrelationID: correlationID}, func(e *Event) bool {
		out = append(out, *e)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("audit timeline: %w", err)
	}
	return out, nil
}

// Export writes the events matching f, oldest first, as JSON Lines. Detail is written as
// stored, so an export can be verified on its own (VerifyJSONL) when it holds the whole
// log.
func Export(ctx context.Context, q Querier, f Filter, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var werr error
	err := Walk(ctx, q, f, func(e *Event) bool {
		werr = enc.Encode(e)
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// VerifyJSONL verifies the chain of a complete export read from r.
func VerifyJSONL(r io.Reader, keys Signer) (VerifyReport, error) {
	v := NewVerifier(keys)
	dec := json.NewDecoder(r)
	for {
		var e Event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return VerifyReport{}, fmt.Errorf("audit verify export: %w", err)
		}
		if !v.Add(&e) {
			break
		}
	}
	return v.Report(), nil
}
