package leader_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remedyhq/remedy/engine/kube/leader"
	"github.com/remedyhq/remedy/test/kubeenv"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }

// timeline records who led when, and fails on any overlap.
type timeline struct {
	mu      sync.Mutex
	current string
	terms   []string
	overlap error
}

func (tl *timeline) lead(id string) func(context.Context) {
	return func(ctx context.Context) {
		tl.mu.Lock()
		if tl.current != "" {
			tl.overlap = errors.New(id + " started leading while " + tl.current + " still was")
		}
		tl.current = id
		tl.terms = append(tl.terms, id)
		tl.mu.Unlock()
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // stopping the consumers takes a moment
		tl.mu.Lock()
		tl.current = ""
		tl.mu.Unlock()
	}
}

func (tl *timeline) waitFor(t *testing.T, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		tl.mu.Lock()
		cur := tl.current
		tl.mu.Unlock()
		if cur == id {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not lead within %s (terms %v)", id, within, tl.terms)
	return 0
}

// switchableRT cuts a replica off the API server, as a network partition or a hung
// process would.
type switchableRT struct {
	rt  http.RoundTripper
	cut *atomic.Bool
}

func (s switchableRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.cut.Load() {
		return nil, errors.New("partitioned")
	}
	return s.rt.RoundTrip(r)
}

func client(t *testing.T, cut *atomic.Bool) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(kenv.Get(t).Config)
	cfg.Timeout = time.Second
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return switchableRT{rt, cut} }
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func config(id string) leader.Config {
	return leader.Config{Namespace: "default", Name: "remedy-engine-test", Identity: id,
		LeaseDuration: 3 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
}

func TestFailover(t *testing.T) {
	var cutA, cutB atomic.Bool
	ca, cb := client(t, &cutA), client(t, &cutB)
	tl := &timeline{}

	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(ctx context.Context, c kubernetes.Interface, id string) {
		wg.Go(func() {
			if err := leader.Run(ctx, c, config(id), tl.lead(id)); err != nil {
				t.Error(err)
			}
		})
	}
	run(ctxA, ca, "engine-a")
	tl.waitFor(t, "engine-a", 5*time.Second)
	run(ctxB, cb, "engine-b")
	time.Sleep(time.Second)
	if tl.terms[len(tl.terms)-1] != "engine-a" || len(tl.terms) != 1 {
		t.Fatalf("standby took over a healthy leader: %v", tl.terms)
	}

	// 1. A shuts down cleanly: its work stops, then it releases the Lease, and B takes
	// over at once rather than after the 2s lease duration.
	stopA()
	took := tl.waitFor(t, "engine-b", 5*time.Second)
	if took > 1500*time.Millisecond {
		t.Errorf("hand-over took %s; the Lease was not released on cancel (it expires after 3s)", took)
	}
	lease, err := ca.CoordinationV1().Leases("default").Get(context.Background(), "remedy-engine-test", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != "engine-b" {
		t.Fatalf("lease %+v err %v", lease, err)
	}

	// 2. A comes back as the standby; B is partitioned from the API server: it stops
	// leading when it cannot renew, and A takes over once the Lease expires.
	ctxA, stopA = context.WithCancel(context.Background())
	run(ctxA, ca, "engine-a")
	time.Sleep(500 * time.Millisecond)
	cutB.Store(true)
	tl.waitFor(t, "engine-a", 8*time.Second)

	// 3. B's partition heals: it stays a follower.
	cutB.Store(false)
	time.Sleep(time.Second)
	tl.mu.Lock()
	cur, terms := tl.current, append([]string(nil), tl.terms...)
	tl.mu.Unlock()
	if cur != "engine-a" || len(terms) != 3 {
		t.Fatalf("after the partition healed: leader %q terms %v", cur, terms)
	}

	stopA()
	stopB()
	wg.Wait()
	if tl.overlap != nil {
		t.Fatal(tl.overlap)
	}
	if tl.current != "" {
		t.Fatalf("%s still leading after shutdown", tl.current)
	}
}

func TestConfigIsChecked(t *testing.T) {
	err := leader.Run(context.Background(), nil, leader.Config{Name: "x"}, func(context.Context) {})
	if err == nil || err.Error() != "leader: namespace, name and identity are required" {
		t.Fatalf("err %v", err)
	}
}
