package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// HashEvent is the hash of e's content and of e.PrevHash: SHA-256 over the seq, the time
// in unix nanoseconds and every text field (PrevHash, Type, CorrelationID, Node, Kind,
// Action, ActionID, Actor, Outcome, PolicyRev, InputHash, Key, Detail), each prefixed by
// its length so that no two contents encode alike. Hex-encoded.
func HashEvent(e *Event) string {
	var stack [1024]byte
	b := binary.BigEndian.AppendUint64(stack[:0], uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, f := range [...]string{e.PrevHash, string(e.Type), e.CorrelationID, e.Node, e.Kind, e.Action,
		e.ActionID, e.Actor, e.Outcome, e.PolicyRev, e.InputHash, e.Key} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Detail)))
	b = append(b, e.Detail...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Normalize checks an event before it is appended and compacts its Detail, so that the
// stored bytes (which the hash covers) are also what an export prints.
func Normalize(e *Event) error {
	if e.Type == "" {
		return ErrNoType
	}
	if len(e.Detail) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Detail); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDetail, err)
	}
	e.Detail = buf.Bytes()
	return nil
}

// Break is the first broken link of a chain.
type Break struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (b *Break) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", b.Seq, b.Reason)
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Rows  int64 `json:"rows"`
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Head is the hash of the last row: keep it elsewhere to detect a rewritten tail.
	Head string `json:"head,omitempty"`
	// Checkpoint is the retention checkpoint that vouches for the rows before First.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Break      *Break      `json:"break,omitempty"`
}

// OK reports whether the chain is intact.
func (r *VerifyReport) OK() bool { return r.Break == nil }

// Verifier checks a chain one event at a time, oldest first; it serves a store and a
// JSONL export alike. The zero value is not usable: see NewVerifier.
type Verifier struct {
	keys     Signer
	rep      VerifyReport
	prevHash string
	// firstPrev is the PrevHash of the first row when rows before it were removed.
	firstPrev string
}

// NewVerifier returns a Verifier that checks checkpoint signatures with keys (nil: a
// checkpoint is a break, since nothing can vouch for it).
func NewVerifier(keys Signer) *Verifier { return &Verifier{keys: keys} }

// Add checks e against the events before it. It returns false once the chain is broken
// (the report then holds the break) and nothing more needs to be added.
func (v *Verifier) Add(e *Event) bool {
	if v.rep.Break != nil {
		return false
	}
	r := &v.rep
	switch {
	case r.Rows == 0:
		r.First = e.Seq
		if e.Seq != 1 {
			v.firstPrev = e.PrevHash
		} else if e.PrevHash != "" {
			return v.brk(e.Seq, "first row has a previous hash")
		}
	case e.Seq != r.Last+1:
		return v.brk(e.Seq, fmt.Sprintf("rows %d..%d are missing", r.Last+1, e.Seq-1))
	case e.PrevHash != v.prevHash:
		return v.brk(e.Seq, fmt.Sprintf("previous hash does not match the hash of row %d", r.Last))
	}
	if HashEvent(e) != e.Hash {
		return v.brk(e.Seq, "content does not match its hash (row edited)")
	}
	if e.Type == RetentionCheckpoint {
		cp, err := OpenCheckpoint(e.Detail, v.keys)
		covers := r.Checkpoint == nil && r.First > 1 && cp != nil && cp.ThroughSeq == r.First-1 && cp.LastHash == v.firstPrev
		switch {
		case covers && err != nil:
			// The removed rows are the first break; say why their checkpoint cannot vouch.
			return v.brk(r.First, fmt.Sprintf("rows 1..%d were removed and their checkpoint (seq %d) cannot vouch for them: %v",
				r.First-1, e.Seq, err))
		case err != nil:
			return v.brk(e.Seq, err.Error())
		case covers:
			r.Checkpoint = cp
		}
	}
	r.Rows++
	r.Last = e.Seq
	r.Head = e.Hash
	v.prevHash = e.Hash
	return true
}

func (v *Verifier) brk(seq int64, reason string) bool {
	if v.rep.Break == nil {
		v.rep.Break = &Break{Seq: seq, Reason: reason}
	}
	return false
}

// finishGap reports the removed rows before the first one as the first break when the
// walk ended without reaching a checkpoint that vouches for them. (A walk that breaks
// earlier reports that break: whether a later checkpoint covers the gap is unknown.)
func (v *Verifier) finishGap() {
	r := &v.rep
	if r.Break == nil && r.First > 1 && r.Checkpoint == nil {
		r.Break = &Break{Seq: r.First, Reason: fmt.Sprintf("rows 1..%d are missing and no signed checkpoint covers them", r.First-1)}
	}
}

// Report ends the walk and returns what it found.
func (v *Verifier) Report() VerifyReport {
	v.finishGap()
	return v.rep
}

// Querier is the read side of a Store.
type Querier interface {
	Query(ctx context.Context, f Filter) ([]Event, error)
}

// pageSize is how many events the walks below read per query.
const pageSize = 5000

// Walk calls fn for every event matching f, oldest first, reading q a page at a time; fn
// returning false stops the walk.
func Walk(ctx context.Context, q Querier, f Filter, fn func(*Event) bool) error {
	f.Ascending = true
	f.Limit = pageSize
	for {
		page, err := q.Query(ctx, f)
		if err != nil {
			return err
		}
		for i := range page {
			if !fn(&page[i]) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// VerifyLog walks the whole log in q and verifies its chain.
func VerifyLog(ctx context.Context, q Querier, keys Signer) (VerifyReport, error) {
	v := NewVerifier(keys)
	if err := Walk(ctx, q, Filter{}, v.Add); err != nil {
		return VerifyReport{}, fmt.Errorf("audit verify: %w", err)
	}
	return v.Report(), nil
}
