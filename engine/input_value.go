package engine

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/wire/signal"
)

// Value returns the policy input as an OPA AST value, ready for policy.EvalValue.
//
// It is the value the JSON round trip produces (json.Marshal of the input, as the audit
// hash reads it; json.Unmarshal into any; ast.InterfaceToValue), built directly from the
// structs: the same fields under the same JSON names, omitempty and omitzero fields left
// out the same way, times in RFC 3339 with nanoseconds, and every number as JSON decoding
// makes it, a float64 (so an integer above 2^53 is rounded, and a large one reads
// "1e+21"). The few inputs whose JSON form is not the plain encoding of their fields — a
// string that is not valid UTF-8 (JSON replaces the bad bytes), a NaN or infinite value
// or a time JSON cannot represent (the marshal fails and the input becomes
// {"marshal_error": ...}), a signal that still carries its raw payload — take the JSON
// round trip itself, so the result is always the same.
func (in *Input) Value() ast.Value {
	b := valueBuilder{ok: true}
	v := b.input(in)
	if !b.ok {
		return jsonValue(in)
	}
	return v
}

// jsonValue is the input as engine.decide converted it through JSON. Like decide it
// ignores json.Unmarshal's error: a number out of float64's range in a raw payload
// decodes as null and the rest of the document still decodes.
func jsonValue(in *Input) ast.Value {
	var doc any
	_ = json.Unmarshal(mustJSON(in), &doc)
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return ast.NullValue // not reached: a decoded JSON document always converts
	}
	return v
}

// Object keys, shared by every value built (OPA's own interned terms are shared the
// same way; evaluation never modifies a term).
var (
	keySignal, keyNode, keyCluster, keyHistory, keyNow, keyDryRun         = key("signal"), key("node"), key("cluster"), key("history"), key("now"), key("dry_run")
	keySource, keyKind, keyStatus, keyFingerprint, keyStartsAt, keyEndsAt = key("source"), key("kind"), key("status"), key("fingerprint"), key("startsAt"), key("endsAt")
	keyLabels, keyAnnotations, keyValues, keyRaw                          = key("labels"), key("annotations"), key("values"), key("raw")
	keyName, keyKnown, keyConditions, keyUnschedulable, keyCordonedBy     = key("name"), key("known"), key("conditions"), key("unschedulable"), key("cordonedBy")
	keyAllocatableCPU, keyCPUs, keyPodCount, keyNICs                      = key("allocatableCPU"), key("cpus"), key("podCount"), key("nics")
	keyType, keyReason                                                    = key("type"), key("reason")
	keyRxRingMax, keyTxRingMax, keyCombinedMax, keyCombinedCurrent        = key("rxRingMax"), key("txRingMax"), key("combinedMax"), key("combinedCurrent")
	keyNodes, keyCordoned                                                 = key("nodes"), key("cordoned")
	keyTime, keyAction, keyActionID, keyOutcome, keyCorrelationID         = key("time"), key("action"), key("actionId"), key("outcome"), key("correlationId")
)

func key(s string) *ast.Term { return ast.InternedTerm(s) }

// valueBuilder builds the AST value; ok turns false on anything only the JSON round
// trip converts faithfully.
type valueBuilder struct {
	ok  bool
	buf []byte
	// terms and pairs are allocated in blocks: an input is a few dozen terms.
	terms []ast.Term
	pairs [][2]*ast.Term
}

// term returns a new term holding v.
func (b *valueBuilder) term(v ast.Value) *ast.Term {
	if len(b.terms) == 0 {
		b.terms = make([]ast.Term, 32)
	}
	t := &b.terms[0]
	b.terms = b.terms[1:]
	t.Value = v
	return t
}

// object collects the fields of one object; done builds it.
type object struct {
	b     *valueBuilder
	pairs [][2]*ast.Term
}

func (b *valueBuilder) object(n int) object {
	if len(b.pairs) < n {
		b.pairs = make([][2]*ast.Term, max(n, 32))
	}
	o := object{b: b, pairs: b.pairs[:0:n]}
	b.pairs = b.pairs[n:]
	return o
}

func (o *object) add(k, v *ast.Term) { o.pairs = append(o.pairs, [2]*ast.Term{k, v}) }

func (o *object) done() *ast.Term { return o.b.term(ast.NewObject(o.pairs...)) }

func (b *valueBuilder) input(in *Input) ast.Value {
	hist := ast.NullTerm() // a nil slice marshals to null
	if in.History != nil {
		terms := make([]*ast.Term, len(in.History))
		for i := range in.History {
			terms[i] = b.history(&in.History[i])
		}
		hist = b.term(ast.NewArray(terms...))
	}
	o := b.object(6)
	o.add(keySignal, b.signal(&in.Signal))
	o.add(keyNode, b.node(&in.Node))
	o.add(keyCluster, b.cluster(&in.Cluster))
	o.add(keyHistory, hist)
	o.add(keyNow, b.time(in.Now))
	o.add(keyDryRun, ast.InternedTerm(in.DryRun))
	return ast.NewObject(o.pairs...)
}

func (b *valueBuilder) signal(s *signal.Signal) *ast.Term {
	o := b.object(10)
	o.add(keySource, b.str(s.Source))
	o.add(keyKind, b.str(string(s.Kind)))
	o.add(keyNode, b.str(s.Node))
	o.add(keyStatus, b.str(string(s.Status)))
	o.add(keyFingerprint, b.str(s.Fingerprint))
	o.add(keyStartsAt, b.time(s.StartsAt))
	if !s.EndsAt.IsZero() { // omitzero
		o.add(keyEndsAt, b.time(s.EndsAt))
	}
	if len(s.Labels) > 0 {
		o.add(keyLabels, b.strings(s.Labels))
	}
	if len(s.Annotations) > 0 {
		o.add(keyAnnotations, b.strings(s.Annotations))
	}
	if len(s.Values) > 0 {
		vals := b.object(len(s.Values))
		for k, v := range s.Values {
			vals.add(b.str(k), b.num(v))
		}
		o.add(keyValues, vals.done())
	}
	if len(s.Raw) > 0 {
		b.ok = false // the payload is JSON of its own: decode it the JSON way
	}
	return o.done()
}

func (b *valueBuilder) node(n *facts.Node) *ast.Term {
	o := b.object(10)
	o.add(keyName, b.str(n.Name))
	o.add(keyKnown, ast.InternedTerm(n.Known))
	if len(n.Labels) > 0 {
		o.add(keyLabels, b.strings(n.Labels))
	}
	if len(n.Annotations) > 0 {
		o.add(keyAnnotations, b.strings(n.Annotations))
	}
	if len(n.Conditions) > 0 {
		terms := make([]*ast.Term, len(n.Conditions))
		for i, c := range n.Conditions {
			co := b.object(3)
			co.add(keyType, b.str(c.Type))
			co.add(keyStatus, b.str(c.Status))
			if c.Reason != "" {
				co.add(keyReason, b.str(c.Reason))
			}
			terms[i] = co.done()
		}
		o.add(keyConditions, b.term(ast.NewArray(terms...)))
	}
	o.add(keyUnschedulable, ast.InternedTerm(n.Unschedulable))
	if n.CordonedBy != "" {
		o.add(keyCordonedBy, b.str(n.CordonedBy))
	}
	if n.AllocatableCPU != 0 {
		o.add(keyAllocatableCPU, b.num(float64(n.AllocatableCPU)))
	}
	if n.CPUs != 0 {
		o.add(keyCPUs, b.num(float64(n.CPUs)))
	}
	if n.PodCount != 0 {
		o.add(keyPodCount, b.num(float64(n.PodCount)))
	}
	if len(n.NICs) > 0 {
		nics := b.object(len(n.NICs))
		for name, nic := range n.NICs {
			no := b.object(4)
			for _, f := range [...]struct {
				k *ast.Term
				v int
			}{{keyRxRingMax, nic.RxRingMax}, {keyTxRingMax, nic.TxRingMax}, {keyCombinedMax, nic.CombinedMax}, {keyCombinedCurrent, nic.CombinedCurrent}} {
				if f.v != 0 {
					no.add(f.k, b.num(float64(f.v)))
				}
			}
			nics.add(b.str(name), no.done())
		}
		o.add(keyNICs, nics.done())
	}
	return o.done()
}

func (b *valueBuilder) cluster(c *facts.Cluster) *ast.Term {
	o := b.object(3)
	o.add(keyNodes, b.num(float64(c.Nodes)))
	o.add(keyCordoned, b.num(float64(c.Cordoned)))
	if len(c.CordonedBy) > 0 {
		by := b.object(len(c.CordonedBy))
		for label, counts := range c.CordonedBy {
			t := ast.NullTerm() // a nil map marshals to null
			if counts != nil {
				co := b.object(len(counts))
				for v, n := range counts {
					co.add(b.str(v), b.num(float64(n)))
				}
				t = co.done()
			}
			by.add(b.str(label), t)
		}
		o.add(keyCordonedBy, by.done())
	}
	return o.done()
}

func (b *valueBuilder) history(h *historyEntry) *ast.Term {
	o := b.object(7)
	o.add(keyTime, b.time(h.Time))
	o.add(keyType, b.str(h.Type))
	o.add(keyAction, b.str(h.Action))
	o.add(keyActionID, b.str(h.ActionID))
	o.add(keyOutcome, b.str(h.Outcome))
	if h.Kind != "" {
		o.add(keyKind, b.str(h.Kind))
	}
	o.add(keyCorrelationID, b.str(h.CorrelationID))
	return o.done()
}

func (b *valueBuilder) strings(m map[string]string) *ast.Term {
	o := b.object(len(m))
	for k, v := range m {
		o.add(b.str(k), b.str(v))
	}
	return o.done()
}

// str is s as JSON decoding returns it; JSON would replace invalid UTF-8.
func (b *valueBuilder) str(s string) *ast.Term {
	if !utf8.ValidString(s) {
		b.ok = false
	}
	return b.term(ast.String(s))
}

// num is f as ast.InterfaceToValue converts the float64 JSON decoding returns. NaN and
// the infinities make json.Marshal fail.
func (b *valueBuilder) num(f float64) *ast.Term {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		b.ok = false
		return ast.NullTerm()
	}
	// Small non-negative integers print the same either way; OPA interns them.
	if f >= 0 && f <= 512 && f == math.Trunc(f) && !(f == 0 && math.Signbit(f)) {
		return ast.InternedTerm(int(f))
	}
	b.buf = strconv.AppendFloat(b.buf[:0], f, 'g', -1, 64)
	return b.term(ast.Number(b.buf))
}

// time is t as time.Time's MarshalJSON writes it (RFC 3339 with nanoseconds); a time it
// refuses (a year outside 0–9999) makes the whole marshal fail.
func (b *valueBuilder) time(t time.Time) *ast.Term {
	var err error
	b.buf, err = t.AppendText(b.buf[:0])
	if err != nil {
		b.ok = false
		return ast.NullTerm()
	}
	return b.term(ast.String(b.buf))
}
