package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

var t0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

// chained gives events seqs from first on and links their hashes after prev.
func chained(first int64, prev string, events ...audit.Event) []audit.Event {
	for i := range events {
		e := &events[i]
		e.Seq, e.PrevHash = first+int64(i), prev
		if e.Time.IsZero() {
			e.Time = t0
		}
		e.Hash = audit.HashEvent(e)
		prev = e.Hash
	}
	return events
}

func sample(n int) []audit.Event {
	out := make([]audit.Event, n)
	for i := range out {
		out[i] = audit.Event{Type: audit.Decision, Node: "n1", Key: fmt.Sprint(i), Detail: json.RawMessage(`{"i":1}`)}
	}
	return chained(1, "", out...)
}

// memLog is a Querier over a slice, oldest first.
type memLog struct {
	events []audit.Event
	err    error
}

func (m *memLog) Query(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []audit.Event
	for _, e := range m.events {
		if e.Seq > f.AfterSeq && (f.Node == "" || e.Node == f.Node) && (f.CorrelationID == "" || e.CorrelationID == f.CorrelationID) {
			out = append(out, e)
		}
	}
	if !f.Ascending {
		panic("memLog answers ascending queries only")
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func TestHashEventCoversEveryField(t *testing.T) {
	base := audit.Event{Seq: 7, Time: t0, Type: audit.ActionResult, CorrelationID: "c", Node: "n", Kind: "k", Action: "a",
		ActionID: "i", Actor: "engine", Outcome: "ok", PolicyRev: "r", InputHash: "h", Key: "key", Detail: json.RawMessage(`{}`),
		PrevHash: "p"}
	for _, tc := range []struct {
		name string
		edit func(e *audit.Event)
	}{
		{"seq", func(e *audit.Event) { e.Seq++ }},
		{"time", func(e *audit.Event) { e.Time = e.Time.Add(time.Nanosecond) }},
		{"type", func(e *audit.Event) { e.Type = audit.Decision }},
		{"correlation", func(e *audit.Event) { e.CorrelationID = "d" }},
		{"node", func(e *audit.Event) { e.Node = "m" }},
		{"kind", func(e *audit.Event) { e.Kind = "j" }},
		{"action", func(e *audit.Event) { e.Action = "b" }},
		{"action id", func(e *audit.Event) { e.ActionID = "j" }},
		{"actor", func(e *audit.Event) { e.Actor = "agent" }},
		{"outcome", func(e *audit.Event) { e.Outcome = "failed" }},
		{"policy", func(e *audit.Event) { e.PolicyRev = "s" }},
		{"input", func(e *audit.Event) { e.InputHash = "g" }},
		{"key", func(e *audit.Event) { e.Key = "kez" }},
		{"detail", func(e *audit.Event) { e.Detail = json.RawMessage(`[]`) }},
		{"prev", func(e *audit.Event) { e.PrevHash = "q" }},
		// Length prefixes keep a byte from moving across a field boundary unnoticed.
		{"boundary", func(e *audit.Event) { e.Node, e.Kind = "nk", "" }},
	} {
		e := base
		tc.edit(&e)
		if audit.HashEvent(&e) == audit.HashEvent(&base) {
			t.Errorf("%s: edit does not change the hash", tc.name)
		}
	}
}

// The encoding is part of the on-disk format: changing it breaks every existing log.
func TestHashEventIsStable(t *testing.T) {
	e := audit.Event{Seq: 1, Time: time.Unix(0, 0).UTC(), Type: audit.Decision, Node: "n1", Detail: json.RawMessage(`{"a":1}`)}
	const want = "1a137b5e648e819072afc11f45ea922848484ececf13eacb1e6ad821c830d8b2"
	if got := audit.HashEvent(&e); got != want {
		t.Fatalf("hash = %s, want %s", got, want)
	}
}

func TestVerifier(t *testing.T) {
	keys := audit.NewHMACSigner([]byte("secret"))
	cp := func(through int64, lastHash string, k audit.Signer) audit.Event {
		ev, err := audit.SealCheckpoint(audit.Checkpoint{ThroughSeq: through, LastHash: lastHash, Removed: through}, k, t0)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	full := sample(6)
	for _, tc := range []struct {
		name   string
		events func() []audit.Event
		want   *audit.Break
		rows   int64
	}{
		{"intact", func() []audit.Event { return sample(6) }, nil, 6},
		{"empty", func() []audit.Event { return nil }, nil, 0},
		{"edited", func() []audit.Event { e := sample(6); e[2].Outcome = "x"; return e },
			&audit.Break{Seq: 3, Reason: "content does not match its hash (row edited)"}, 2},
		{"missing", func() []audit.Event { e := sample(6); return append(e[:2], e[3:]...) },
			&audit.Break{Seq: 4, Reason: "rows 3..3 are missing"}, 2},
		{"reordered", func() []audit.Event { e := sample(6); e[2], e[3] = e[3], e[2]; return e },
			&audit.Break{Seq: 4, Reason: "rows 3..3 are missing"}, 2},
		{"first row linked", func() []audit.Event { return chained(1, "x", sample(2)...) },
			&audit.Break{Seq: 1, Reason: "first row has a previous hash"}, 0},
		{"relinked", func() []audit.Event { e := sample(6); e[3].PrevHash = e[1].Hash; return e },
			&audit.Break{Seq: 4, Reason: "previous hash does not match the hash of row 3"}, 3},
		{"head removed, no checkpoint", func() []audit.Event { return sample(6)[2:] },
			&audit.Break{Seq: 3, Reason: "rows 1..2 are missing and no signed checkpoint covers them"}, 4},
		{"head removed, checkpoint", func() []audit.Event {
			return append(sample(6)[2:], chained(7, full[5].Hash, cp(2, full[1].Hash, keys))...)
		}, nil, 5},
		{"checkpoint of other rows", func() []audit.Event {
			return append(sample(6)[2:], chained(7, full[5].Hash, cp(1, full[0].Hash, keys))...)
		}, &audit.Break{Seq: 3, Reason: "rows 1..2 are missing and no signed checkpoint covers them"}, 5},
		{"checkpoint with other key", func() []audit.Event {
			return append(sample(6)[2:], chained(7, full[5].Hash, cp(2, full[1].Hash, audit.NewHMACSigner([]byte("x"))))...)
		}, &audit.Break{Seq: 3, Reason: "rows 1..2 were removed and their checkpoint (seq 7) cannot vouch for them: " +
			"checkpoint signed with key hmac-sha256:2d711642b726b044, have hmac-sha256:2bb80d537b1da3e3"}, 4},
		{"break before the gap's checkpoint", func() []audit.Event { e := sample(6)[2:]; e[2].Node = "x"; return e },
			&audit.Break{Seq: 5, Reason: "content does not match its hash (row edited)"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			for _, e := range tc.events() {
				if err := enc.Encode(e); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := audit.VerifyJSONL(&buf, keys)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep.Break, tc.want) || rep.Rows != tc.rows {
				t.Fatalf("report = %+v (break %v), want break %v after %d rows", rep, rep.Break, tc.want, tc.rows)
			}
		})
	}
}

func TestCheckpointSigners(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	ed := audit.NewEd25519Signer(priv)
	c := audit.Checkpoint{ThroughSeq: 10, LastHash: "abc", Removed: 10, Oldest: t0, Newest: t0.Add(time.Hour), Before: t0.Add(2 * time.Hour)}
	for _, tc := range []struct {
		name    string
		sign    audit.Signer
		check   audit.Signer
		tamper  func(string) string
		wantErr string
	}{
		{"ed25519", ed, ed, nil, ""},
		{"ed25519 public key", ed, audit.NewEd25519Verifier(ed.Public()), nil, ""},
		{"hmac", audit.NewHMACSigner([]byte("k")), audit.NewHMACSigner([]byte("k")), nil, ""},
		{"hmac other key", audit.NewHMACSigner([]byte("k")), audit.NewHMACSigner([]byte("l")), nil,
			"checkpoint signed with key hmac-sha256:8254c329a92850f6, have hmac-sha256:acac86c0e609ca90"},
		{"edited", ed, ed, func(s string) string { return strings.Replace(s, `"removed":10`, `"removed":9`, 1) },
			"checkpoint signature is invalid"},
		{"bad signature", ed, ed, func(s string) string { return strings.Replace(s, `"signature":"`, `"signature":"!`, 1) },
			"checkpoint signature is invalid"},
		{"no key", ed, nil, nil, "checkpoint signature cannot be checked: no key configured"},
		{"not json", ed, ed, func(string) string { return "{" }, "decode checkpoint: unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := audit.SealCheckpoint(c, tc.sign, t0)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != audit.RetentionCheckpoint || ev.Key != "checkpoint:10" || ev.Actor != audit.ActorEngine {
				t.Fatalf("checkpoint event = %+v", ev)
			}
			detail := string(ev.Detail)
			if tc.tamper != nil {
				detail = tc.tamper(detail)
			}
			got, err := audit.OpenCheckpoint([]byte(detail), tc.check)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := c
			want.KeyID, want.Signature = tc.sign.KeyID(), got.Signature
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("checkpoint = %+v, want %+v", *got, want)
			}
		})
	}
	if _, err := audit.SealCheckpoint(c, audit.NewEd25519Verifier(ed.Public()), t0); !errors.Is(err, audit.ErrVerifyOnly) {
		t.Fatalf("sealing with a public key: err = %v", err)
	}
	if _, err := audit.SealCheckpoint(c, nil, t0); !errors.Is(err, audit.ErrNoSigner) {
		t.Fatalf("sealing without a key: err = %v", err)
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     audit.Event
		detail string
		err    string
	}{
		{"compacts", audit.Event{Type: audit.Decision, Detail: json.RawMessage("{ \"a\" : [1, 2] }\n")}, `{"a":[1,2]}`, ""},
		{"keeps html", audit.Event{Type: audit.Decision, Detail: json.RawMessage(`{"a":"<&>"}`)}, `{"a":"<&>"}`, ""},
		{"no detail", audit.Event{Type: audit.Decision}, "", ""},
		{"no type", audit.Event{}, "", "audit event has no type"},
		{"bad json", audit.Event{Type: audit.Decision, Detail: json.RawMessage(`{a}`)}, "",
			"audit event detail is not valid JSON: invalid character 'a' looking for beginning of object key string"},
	} {
		err := audit.Normalize(&tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || string(tc.in.Detail) != tc.detail {
			t.Errorf("%s: detail = %s, %v; want %s", tc.name, tc.in.Detail, err, tc.detail)
		}
	}
}

func TestExportAndTimeline(t *testing.T) {
	events := sample(3)
	events[1].CorrelationID = "inc"
	events[1].Detail = json.RawMessage(`{"a":"<b>"}`)
	events = chained(1, "", events...)
	m := &memLog{events: events}
	var buf bytes.Buffer
	if err := audit.Export(context.Background(), m, audit.Filter{}, &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"detail":{"a":"<b>"}`) {
		t.Fatalf("export = %s", buf.String())
	}
	tl, err := audit.Timeline(context.Background(), m, "inc")
	if err != nil || len(tl) != 1 || tl[0].Seq != 2 {
		t.Fatalf("timeline = %+v, %v", tl, err)
	}
	m.err = errors.New("disk on fire")
	if err := audit.Export(context.Background(), m, audit.Filter{}, &buf); err == nil || err.Error() != "audit export: disk on fire" {
		t.Fatalf("export error = %v", err)
	}
	if _, err := audit.Timeline(context.Background(), m, "inc"); err == nil || err.Error() != "audit timeline: disk on fire" {
		t.Fatalf("timeline error = %v", err)
	}
}

func TestFollowStopsOnCallbackError(t *testing.T) {
	m := &memLog{events: sample(5)}
	var seen []int64
	stop := errors.New("enough")
	err := audit.Follow(context.Background(), m, audit.Filter{AfterSeq: 1}, time.Millisecond, func(e audit.Event) error {
		seen = append(seen, e.Seq)
		if len(seen) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !reflect.DeepEqual(seen, []int64{2, 3, 4}) {
		t.Fatalf("follow = %v, %v", seen, err)
	}
}

func TestGroupCommitterClose(t *testing.T) {
	g := audit.NewGroupCommitter(10, func(_ context.Context, b []audit.Batch) ([]audit.Committed, []error, error) {
		out := make([]audit.Committed, len(b))
		for i := range b {
			out[i].Inserted = make([]bool, len(b[i].Events))
		}
		return out, nil, nil
	})
	if _, err := g.Commit(context.Background(), audit.Batch{Events: []audit.Event{{Type: audit.Decision}}}); err != nil {
		t.Fatal(err)
	}
	if !g.Close() || g.Close() {
		t.Fatal("first Close must report true, the second false")
	}
	if _, err := g.Commit(context.Background(), audit.Batch{Events: []audit.Event{{Type: audit.Decision}}}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("append after close: err = %v", err)
	}
}

func TestParseKey(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	ed := audit.NewEd25519Signer(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	for _, tc := range []struct {
		in, keyID, err string
	}{
		{"ed25519:" + seed + "\n", ed.KeyID(), ""},
		{audit.PublicKey(ed), ed.KeyID(), ""},
		{"hmac:" + seed, audit.NewHMACSigner(bytes.Repeat([]byte{1}, 32)).KeyID(), ""},
		{"ed25519:AAAA", "", "audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>: ed25519 key of 3 bytes"},
		{"hmac:AAAA", "", "audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>: hmac key of 3 bytes"},
		{"rsa:" + seed, "", "audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>: rsa key of 32 bytes"},
		{"ed25519:!", "", "audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>: illegal base64 data at input byte 0"},
		{seed, "", "audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>"},
	} {
		k, err := audit.ParseKey(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, audit.ErrBadKey) {
				t.Errorf("ParseKey(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || k.KeyID() != tc.keyID {
			t.Errorf("ParseKey(%q) = %v, %v; want key %s", tc.in, k, err, tc.keyID)
		}
	}
	if audit.PublicKey(audit.NewHMACSigner([]byte("x"))) != "" {
		t.Error("an HMAC key has no public form")
	}
}

// An Append whose context ends while its commit runs still reports the commit's
// outcome: an error must mean the events were not written.
func TestGroupCommitterWaitsForQueuedCommit(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	g := audit.NewGroupCommitter(10, func(_ context.Context, b []audit.Batch) ([]audit.Committed, []error, error) {
		close(started)
		<-release
		return []audit.Committed{{Inserted: []bool{true}}}, nil, nil
	})
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.Commit(ctx, audit.Batch{Events: []audit.Event{{Type: audit.Decision}}})
		done <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Append returned %v before its commit ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Append after a committed write = %v, want nil", err)
	}
}
