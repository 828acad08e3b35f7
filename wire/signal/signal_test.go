package signal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func valid() Signal {
	return Signal{Source: "agent", Kind: KindIRQSkew, Node: "node-1", Status: Firing, Fingerprint: "fp1",
		StartsAt: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Signal)
		want string
	}{
		{"ok", func(*Signal) {}, ""},
		{"no node", func(s *Signal) { s.Node = "" }, "signal has no node"},
		{"node with subject wildcard", func(s *Signal) { s.Node = "a.>" }, `invalid node name "a.>"`},
		{"node with space", func(s *Signal) { s.Node = "a b" }, `invalid node name "a b"`},
		{"no kind", func(s *Signal) { s.Kind = "" }, "signal has no kind"},
		{"bad kind", func(s *Signal) { s.Kind = "irq skew" }, `invalid kind "irq skew"`},
		{"bad status", func(s *Signal) { s.Status = "pending" }, `signal status must be firing or resolved, got "pending"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.mod(&s)
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestKeyIdentifiesOneEpisodeAndState(t *testing.T) {
	a, b := valid(), valid()
	b.Labels = map[string]string{"extra": "x"} // labels do not change identity
	if a.Key() != b.Key() {
		t.Fatal("same fingerprint, start and status must give the same key")
	}
	r := valid()
	r.Status = Resolved
	if r.Key() == a.Key() {
		t.Fatal("resolved and firing must have different keys")
	}
	later := valid()
	later.StartsAt = later.StartsAt.Add(time.Hour)
	if later.Key() == a.Key() {
		t.Fatal("a new episode (new start) must have a new key")
	}
	if got := a.Subject(); got != "remedy.signals.node-1.irq_skew" {
		t.Fatalf("Subject() = %q", got)
	}
}

func TestCloudEventRoundTrip(t *testing.T) {
	s := valid()
	s.Values = map[string]float64{"cpus": 2}
	b, err := EncodeCloudEvent(&s, "remedy-agent/node-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCloudEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key() != s.Key() || got.Values["cpus"] != 2 || got.Node != "node-1" {
		t.Fatalf("round trip changed the signal: %+v", got)
	}
	var ev CloudEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID != s.Key() || ev.Type != CloudEventType || ev.SpecVersion != "1.0" {
		t.Fatalf("envelope = %+v", ev)
	}
}

func TestDecodeCloudEventErrors(t *testing.T) {
	data := `{"kind":"psi","node":"n1","status":"firing"}`
	env := func(fields string) string {
		return `{"specversion":"1.0","id":"1","source":"s","type":"dev.remedy.signal.v1"` + fields + `}`
	}
	for _, tc := range []struct {
		name, in, want string
		is             error
	}{
		{"not json", `{`, "decode cloudevent: unexpected EOF", nil},
		{"wrong spec", `{"specversion":"0.3","id":"1","source":"s","type":"dev.remedy.signal.v1","data":{}}`,
			`not a remedy signal cloudevent: specversion "0.3", want "1.0"`, ErrNotCloudEvent},
		{"wrong type", `{"specversion":"1.0","id":"1","source":"s","type":"x","data":{}}`,
			`not a remedy signal cloudevent: type "x", want "dev.remedy.signal.v1"`, ErrNotCloudEvent},
		{"no id", `{"specversion":"1.0","source":"s","type":"dev.remedy.signal.v1","data":{}}`,
			"not a remedy signal cloudevent: id and source are required", ErrNotCloudEvent},
		{"no data", env(""), "not a remedy signal cloudevent: no data", ErrNotCloudEvent},
		{"data not object", env(`,"data":[1]`), "decode signal data: json: cannot unmarshal array into Go value of type signal.Signal", nil},
		{"invalid signal", env(`,"data":{"kind":"psi","status":"firing"}`), "signal has no node", ErrNoNode},
		{"ok", env(`,"data":` + data), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeCloudEvent([]byte(tc.in))
			if tc.want == "" {
				if err != nil || s.Source != "s" {
					t.Fatalf("got %+v, %v", s, err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err %v is not %v", err, tc.is)
			}
		})
	}
	big := `{"data":"` + strings.Repeat("x", MaxEventSize) + `"}`
	if _, err := DecodeCloudEvent([]byte(big)); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("oversized event: %v", err)
	}
}

func FuzzDecodeCloudEvent(f *testing.F) {
	s := valid()
	b, _ := EncodeCloudEvent(&s, "seed")
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeCloudEvent(in)
		if err != nil {
			return
		}
		if verr := got.Validate(); verr != nil {
			t.Fatalf("decoded an invalid signal: %v", verr)
		}
	})
}
