package alertmanager

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/remedyhq/remedy/wire/signal"
)

type nopSink struct{}

func (nopSink) Submit(context.Context, []signal.Signal) error { return nil }

func BenchmarkDecode(b *testing.B) {
	body := fixture(b, "irq_skew.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		msg, err := Decode(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_ = DefaultMapping().Signals(msg)
	}
}

// BenchmarkHandler is the webhook handler's own cost (decode, map, respond) with a sink
// that records nothing.
func BenchmarkHandler(b *testing.B) {
	body := fixture(b, "irq_skew.json")
	h := NewHandler(Options{Sink: nopSink{}})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/alertmanager", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
