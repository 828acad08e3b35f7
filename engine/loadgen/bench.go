package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
)

// BenchOptions of `remedy bench`.
type BenchOptions struct {
	PolicyDir string
	// Scenarios are "conns x alerts-per-webhook x webhooks [@ rate/s]" runs.
	Scenarios []Options
	// DataDir for the engine; a temporary directory when empty.
	DataDir string
}

// DefaultScenarios are the targets: 1 and 10 alerts per webhook over 16
// connections flat out, and 1,000 alerts/s offered for the latency target.
func DefaultScenarios() []Options {
	return []Options{
		{Conns: 16, AlertsPerWebhook: 1, Webhooks: 20000},
		{Conns: 16, AlertsPerWebhook: 10, Webhooks: 4000},
		{Conns: 16, AlertsPerWebhook: 1, Webhooks: 10000, Rate: 1000},
	}
}

// Bench runs every scenario against a bare decoding handler and against an in-process
// engine on its embedded default (dry run), and writes a report.
func Bench(ctx context.Context, o BenchOptions, out io.Writer) error {
	if o.DataDir == "" {
		dir, err := os.MkdirTemp("", "remedy-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.DataDir = dir
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = DefaultScenarios()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bare := &http.Server{Handler: BareHandler(), ReadHeaderTimeout: 10 * time.Second}
	go bare.Serve(ln) //nolint:errcheck // closed below
	defer bare.Close()

	a, err := app.Start(ctx, app.Options{DataDir: o.DataDir, PolicyDir: o.PolicyDir, Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", DryRun: true})
	if err != nil {
		return err
	}
	defer a.Stop()
	fmt.Fprintf(out, "remedy bench: GOMAXPROCS=%s, engine on the embedded default (SQLite synchronous=FULL, dry run), policy %s\n\n",
		strconv.Itoa(runtime.GOMAXPROCS(0)), a.Policy.Current().Revision)
	for i, sc := range o.Scenarios {
		name := fmt.Sprintf("%d conns, %d alert(s)/webhook, %d webhooks", sc.Conns, sc.AlertsPerWebhook, sc.Webhooks)
		if sc.Rate > 0 {
			name += fmt.Sprintf(", offered %.0f webhooks/s", sc.Rate)
		}
		fmt.Fprintf(out, "scenario %d: %s\n", i+1, name)
		sc.Seed = fmt.Sprintf("s%d-%d", i, time.Now().UnixNano())
		sc.URL = "http://" + ln.Addr().String() + "/"
		cpu0 := cpuTime()
		br, err := Run(ctx, sc)
		if err != nil {
			return err
		}
		bareCPU := perAlert(cpuTime()-cpu0, br.Alerts)
		fmt.Fprintf(out, "  bare net/http decode: %s\n", br)
		sc.URL = a.URL() + "/webhooks/alertmanager"
		after, err := headSeq(ctx, a.Store)
		if err != nil {
			return err
		}
		cpu1 := cpuTime()
		er, err := Run(ctx, sc)
		if err != nil {
			return err
		}
		ackCPU := perAlert(cpuTime()-cpu1, er.Alerts)
		fmt.Fprintf(out, "  remedy (durable ack): %s\n", er)
		if br.AlertsPerSec > 0 {
			fmt.Fprintf(out, "  ratio remedy/bare: %.2f\n", er.AlertsPerSec/br.AlertsPerSec)
		}
		lag, err := decisionLag(ctx, a.Store, sc.Seed, er.Alerts, after)
		if err != nil {
			fmt.Fprintf(out, "  decisions: %v\n", err)
		} else {
			fmt.Fprintf(out, "  %s\n", lag)
		}
		fmt.Fprintf(out, "  CPU per alert (whole process, load generator included): bare %s; remedy %s until acked, %s until decided\n",
			bareCPU, ackCPU, perAlert(cpuTime()-cpu1, er.Alerts))
	}
	fmt.Fprintf(out, "\npeak RSS of this process (engine + load generator + bare server): %s\n", peakRSS())
	return nil
}

// headSeq is the seq of the newest audit event.
func headSeq(ctx context.Context, st audit.Store) (int64, error) {
	evs, err := st.Query(ctx, audit.Filter{Limit: 1, WithoutDetail: true})
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[0].Seq, nil
}

// decisionLag waits for every alert of a run (recorded after seq after) to be decided and
// reports the time from signal recorded to decision recorded and to action dispatched.
// It polls without event details, so that watching does not slow the engine down.
func decisionLag(ctx context.Context, st audit.Store, seed string, alerts int, after int64) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	evs, err := st.Query(ctx, audit.Filter{Type: audit.SignalReceived, AfterSeq: after, Limit: 1000000})
	if err != nil {
		return "", err
	}
	sig := map[string]time.Time{}
	for _, e := range evs {
		if strings.Contains(string(e.Detail), `"fingerprint":"`+seed+"-") {
			sig[e.CorrelationID] = e.Time
		}
	}
	dec, disp := map[string]time.Time{}, map[string]time.Time{}
	for {
		evs, err := st.Query(ctx, audit.Filter{Types: []audit.Type{audit.Decision, audit.Dispatched}, AfterSeq: after,
			Ascending: true, Limit: 100000, WithoutDetail: true})
		if err != nil {
			return "", err
		}
		for _, e := range evs {
			after = e.Seq
			if _, ok := sig[e.CorrelationID]; !ok {
				continue
			}
			if e.Type == audit.Decision {
				dec[e.CorrelationID] = e.Time
			} else {
				disp[e.CorrelationID] = e.Time
			}
		}
		if len(dec) >= alerts || time.Now().After(deadline) {
			var dl, pl []time.Duration
			for corr, t := range dec {
				dl = append(dl, t.Sub(sig[corr]))
				if d, ok := disp[corr]; ok {
					pl = append(pl, d.Sub(sig[corr]))
				}
			}
			slices.Sort(dl)
			slices.Sort(pl)
			if len(dl) == 0 {
				return "", fmt.Errorf("no decisions recorded")
			}
			s := fmt.Sprintf("decided %d/%d: received->decided p50 %s p99 %s", len(dec), alerts, pct(dl, .5), pct(dl, .99))
			if len(pl) > 0 {
				s += fmt.Sprintf("; received->dispatched p50 %s p99 %s (%d actions)", pct(pl, .5), pct(pl, .99), len(pl))
			}
			return s, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perAlert(d time.Duration, alerts int) time.Duration {
	if alerts == 0 {
		return 0
	}
	return (d / time.Duration(alerts)).Round(time.Microsecond)
}

func peakRSS() string {
	b, err := os.ReadFile(filepath.Join("/proc", "self", "status"))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}
