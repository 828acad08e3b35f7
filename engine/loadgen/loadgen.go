// Package loadgen is remedy's load generator: it posts Alertmanager webhooks over HTTP
// with keep-alive, from a number of connections, flat out or at a target rate, and
// reports alerts/s and latency percentiles. `remedy bench` runs it against an
// in-process engine and, in the same run, against a bare net/http handler that only
// decodes the same payloads, so the ratio shows the engine's own cost.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/remedyhq/remedy/webhooks/alertmanager"
)

// Options of a run.
type Options struct {
	URL string
	// Conns is the number of concurrent keep-alive connections (default 16).
	Conns int
	// AlertsPerWebhook is the batch size of each webhook (default 1).
	AlertsPerWebhook int
	// Webhooks is how many webhooks to send in total.
	Webhooks int
	// Rate, when > 0, paces sending to this many webhooks per second.
	Rate float64
	// Nodes spreads alerts over this many node names (default 1000).
	Nodes int
	// Seed makes alert fingerprints unique across runs against one engine.
	Seed  string
	Token string
}

// Report is what a run measured.
type Report struct {
	Webhooks, Alerts, Errors int
	Elapsed                  time.Duration
	AlertsPerSec             float64
	P50, P99, P999, Max      time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("%d webhooks (%d alerts) in %s: %.0f alerts/s, latency p50 %s p99 %s p99.9 %s max %s, %d errors",
		r.Webhooks, r.Alerts, r.Elapsed.Round(time.Millisecond), r.AlertsPerSec, r.P50, r.P99, r.P999, r.Max, r.Errors)
}

// Payload builds webhook i: AlertsPerWebhook distinct firing alerts.
func Payload(o Options, i int) []byte {
	msg := alertmanager.Message{Version: "4", GroupKey: fmt.Sprintf("{}:{bench=%q}", o.Seed)}
	msg.Receiver, msg.Status = "remedy", "firing"
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for j := range o.AlertsPerWebhook {
		n := i*o.AlertsPerWebhook + j
		msg.Alerts = append(msg.Alerts, template.Alert{
			Status: "firing",
			Labels: template.KV{"alertname": "NodePacketDrops", "node": fmt.Sprintf("bench-node-%d", n%o.Nodes),
				"cause": "ring", "device": "eth0"},
			Annotations: template.KV{"summary": "bench"},
			StartsAt:    start,
			Fingerprint: fmt.Sprintf("%s-%d", o.Seed, n),
		})
	}
	b, _ := json.Marshal(msg)
	return b
}

// Run sends the load and measures the time from request to (durable) response.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Conns <= 0 {
		o.Conns = 16
	}
	if o.AlertsPerWebhook <= 0 {
		o.AlertsPerWebhook = 1
	}
	if o.Nodes <= 0 {
		o.Nodes = 1000
	}
	if o.Webhooks <= 0 {
		return Report{}, fmt.Errorf("webhooks must be > 0")
	}
	bodies := make([][]byte, o.Webhooks)
	for i := range bodies {
		bodies[i] = Payload(o, i)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: o.Conns, MaxConnsPerHost: o.Conns,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var next, errs atomic.Int64
	lat := make([]time.Duration, o.Webhooks)
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				i := int(next.Add(1)) - 1
				if i >= o.Webhooks || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				if o.Token != "" {
					req.Header.Set("Authorization", "Bearer "+o.Token)
				}
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sent := min(int(next.Load()), o.Webhooks)
	lat = lat[:sent]
	slices.Sort(lat)
	r := Report{Webhooks: sent, Alerts: sent * o.AlertsPerWebhook, Errors: int(errs.Load()), Elapsed: el,
		AlertsPerSec: float64(sent*o.AlertsPerWebhook) / el.Seconds()}
	if sent > 0 {
		r.P50, r.P99, r.P999, r.Max = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999), lat[sent-1]
	}
	return r, ctx.Err()
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// BareHandler decodes webhooks and maps them to signals, then answers 200: the floor
// any webhook receiver pays, used as the baseline.
func BareHandler() http.Handler {
	m := alertmanager.DefaultMapping()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, err := alertmanager.Decode(http.MaxBytesReader(w, r.Body, alertmanager.DefaultMaxBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sigs := m.Signals(msg)
		fmt.Fprintf(w, `{"status":"recorded","alerts":%d}`+"\n", len(sigs))
	})
}
