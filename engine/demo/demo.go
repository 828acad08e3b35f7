// Package demo runs remedy end to end on one machine with nothing installed: the engine
// on its embedded default (in-process NATS, SQLite), one dry-run agent per node, and a
// set of sample Alertmanager webhooks. It prints what was decided and what the audit log
// holds. `make demo` runs it.
package demo

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/report"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/policies"
	"github.com/remedyhq/remedy/webhooks/alertmanager"
)

// Samples are the demo's Alertmanager webhooks (IRQ skew, packet drops, VM freeze, PSI),
// built into the binary so that `remedy demo` runs from anywhere.
//
//go:embed samples/*.json
var Samples embed.FS

var builtIn, _ = fs.Sub(Samples, "samples")

// Options of the demo.
type Options struct {
	// PolicyDir is the policy directory or bundle; empty means the shipped library as
	// built in (policies.Library).
	PolicyDir string
	// PayloadDir holds the webhook payloads (*.json) to post; empty means Samples.
	PayloadDir string
	// DataDir is kept after the run when set; otherwise a temporary one is removed.
	DataDir string
	// Live lets the agents really change the node (default: dry run).
	Live    bool
	Timeout time.Duration
	Logger  *slog.Logger
}

// Run runs the demo and writes its report to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		dir, err := os.MkdirTemp("", "remedy-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.DataDir = dir
	}
	src, where := fs.FS(os.DirFS(o.PayloadDir)), o.PayloadDir
	if o.PayloadDir == "" {
		src, where = builtIn, "the built-in samples"
	}
	if o.PolicyDir == "" {
		o.PolicyDir = filepath.Join(o.DataDir, "policies")
		if err := os.CopyFS(o.PolicyDir, policies.Library); err != nil {
			return fmt.Errorf("built-in policies: %w", err)
		}
	}
	payloads, nodes, err := loadPayloads(src, where)
	if err != nil {
		return err
	}
	a, err := app.Start(ctx, app.Options{
		DataDir: filepath.Join(o.DataDir, "engine"), PolicyDir: o.PolicyDir, Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", DryRun: !o.Live, SweepInterval: 500 * time.Millisecond, Logger: o.Logger,
	})
	if err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	defer a.Stop()
	fmt.Fprintf(out, "remedy engine on %s (embedded NATS %s, policy revision %s, dry run %v)\n",
		a.URL(), a.NATSURL(), a.Policy.Current().Revision, !o.Live)

	actx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	for _, n := range nodes {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := agent.Run(actx, agent.Options{Node: n, NATSURL: a.NATSURL(), StateDir: filepath.Join(o.DataDir, "agent-"+n),
				Registry: reg, DryRun: !o.Live, Logger: o.Logger})
			if err != nil {
				o.Logger.Error("agent", "node", n, "err", err)
			}
		}()
	}
	fmt.Fprintf(out, "agents running for %d nodes\n\n", len(nodes))

	for _, p := range payloads {
		resp, err := http.Post(a.URL()+"/webhooks/alertmanager", "application/json", bytes.NewReader(p.body))
		if err != nil {
			return fmt.Errorf("post %s: %w", p.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(out, "POST %-20s -> %s %s", p.name, resp.Status, body)
	}
	// The demo's operator approves what the policy holds for a person (the PSI cordon),
	// so that the whole path shows: on the embedded default the approved cluster action
	// is recorded as unavailable, with what to configure.
	if err := approveHeld(ctx, a, len(payloads), o.Timeout, out); err != nil {
		fmt.Fprintf(out, "\nwarning: %v\n", err)
	}
	if err := waitSettled(ctx, a.Store, len(payloads), o.Timeout); err != nil {
		fmt.Fprintf(out, "\nwarning: %v\n", err)
	}
	evs, err := a.Store.Query(ctx, audit.Filter{Limit: 1000})
	if err != nil {
		return err
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	fmt.Fprintln(out, "\nDecisions:")
	for _, e := range evs {
		if e.Type == audit.Decision {
			fmt.Fprintf(out, "  %-24s %-13s %-16s %s\n", e.Node, e.Kind, e.Outcome, report.Summary(e))
		}
	}
	fmt.Fprintln(out, "\nAudit log:")
	return report.Table(out, evs)
}

type payload struct {
	name string
	body []byte
}

func loadPayloads(src fs.FS, where string) ([]payload, []string, error) {
	files, err := fs.Glob(src, "*.json")
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("no sample payloads (*.json) in %s", where)
	}
	sort.Strings(files)
	seen := map[string]bool{}
	var ps []payload
	var nodes []string
	m := alertmanager.DefaultMapping()
	for _, f := range files {
		b, err := fs.ReadFile(src, f)
		if err != nil {
			return nil, nil, err
		}
		msg, err := alertmanager.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, s := range m.Signals(msg) {
			if s.Node != "" && !seen[s.Node] {
				seen[s.Node] = true
				nodes = append(nodes, s.Node)
			}
		}
		ps = append(ps, payload{name: path.Base(f), body: b})
	}
	return ps, nodes, nil
}

// waitSettled waits until every signal is decided and every planned action answered.
func waitSettled(ctx context.Context, st audit.Store, signals int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, err := st.Query(ctx, audit.Filter{Limit: 10000})
		if err != nil {
			return err
		}
		decided, open := 0, map[string]bool{}
		for _, e := range evs {
			switch e.Type {
			case audit.Decision:
				decided++
			case audit.ActionPlanned:
				if _, ok := open[e.ActionID]; !ok {
					open[e.ActionID] = true
				}
			case audit.ActionResult:
				open[e.ActionID] = false
			}
		}
		pending := 0
		for _, v := range open {
			if v {
				pending++
			}
		}
		if decided >= signals && pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("timed out waiting for decisions and results")
}

// approveHeld waits until every signal is decided, then approves each pending request as
// the demo's operator and says so.
func approveHeld(ctx context.Context, a *app.App, signals int, timeout time.Duration, out io.Writer) error {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.Decision, Limit: 10000})
		if err != nil {
			return err
		}
		if len(evs) >= signals {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for decisions")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	held, err := a.Approvals.List(ctx, false)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		fmt.Fprintln(out)
	}
	who := approval.Identity{Name: "demo-operator", Role: approval.Approver}
	for _, r := range held {
		if _, err := a.Approvals.Approve(ctx, r.ID, who, "approved by the demo"); err != nil {
			return fmt.Errorf("approve %s: %w", r.ID, err)
		}
		fmt.Fprintf(out, "approved %s on %s as %s (the policy asks a person for it)\n", r.Held.Request.Action, r.Held.Request.Node, who.Name)
	}
	return nil
}
