// Package leader keeps one engine replica active: replicas contend for a
// coordination.k8s.io Lease and only the holder runs the consumers (JetStream decisions,
// the node-condition source, cluster actions).
//
// Two guarantees beyond client-go's leaderelection: the Lease is released (so a standby
// takes over at once rather than after the lease expires) only after the leader's work
// has returned, so two replicas never run the consumers at the same time on a clean
// hand-over; and a replica that lost the Lease contends again instead of exiting.
//
// RBAC (in the engine's namespace): leases get, create, update.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config of an election.
type Config struct {
	// Namespace and Name of the Lease, e.g. "remedy", "remedy-engine".
	Namespace string
	Name      string
	// Identity of this replica (the pod name); must differ between replicas.
	Identity string
	// LeaseDuration is how long a standby waits before taking over a lease that was not
	// renewed (default 15s); RenewDeadline how long the leader retries renewing before it
	// gives up (default 10s); RetryPeriod the pause between attempts (default 2s).
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Logger        *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" || c.Name == "" || c.Identity == "" {
		return c, errors.New("leader: namespace, name and identity are required")
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Run contends for the Lease until ctx ends. Each time this replica becomes the leader
// it calls onLead with a context that is cancelled when leadership ends (lost Lease or
// ctx cancelled); onLead must return promptly then. Run returns after onLead has
// returned and the Lease has been released.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config, onLead func(ctx context.Context)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		if err := term(ctx, lock, cfg, onLead); err != nil {
			return err
		}
		// Lost the Lease (or onLead returned early): pause, then contend again.
		select {
		case <-ctx.Done():
		case <-time.After(wait.Jitter(cfg.RetryPeriod, 0.2)):
		}
	}
	return nil
}

// term is one attempt: acquire, lead, and give the Lease up.
func term(ctx context.Context, lock resourcelock.Interface, cfg Config, onLead func(context.Context)) error {
	// The elector's context is not ctx: on shutdown it must outlive onLead, so that the
	// Lease is released only once the leader's work has stopped.
	electCtx, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElecting()
	var (
		mu      sync.Mutex
		over    bool // le.Run has returned: a late OnStartedLeading must not lead
		running bool
		done    = make(chan struct{})
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			// client-go calls this in a goroutine of its own.
			OnStartedLeading: func(leadCtx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				running = true
				mu.Unlock()
				defer close(done)
				leadCtx, cancel := context.WithCancel(leadCtx)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				cfg.Logger.Info("leading", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				onLead(leadCtx)
				// Returning (early or on cancel) gives leadership up: the elector stops
				// renewing and releases the Lease.
				stopElecting()
			},
			OnStoppedLeading: func() {
				cfg.Logger.Info("stopped leading", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
			},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					cfg.Logger.Info("following", "leader", id, "lease", cfg.Namespace+"/"+cfg.Name)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	// Not leading when ctx ends: stop contending at once. Leading: onLead sees ctx end,
	// and its return stops the elector.
	go func() {
		select {
		case <-ctx.Done():
			if !le.IsLeader() {
				stopElecting()
			}
		case <-electCtx.Done():
		}
	}()
	le.Run(electCtx)
	// le.Run returns as soon as renewing fails, while onLead may still be stopping.
	mu.Lock()
	over = true
	wasRunning := running
	mu.Unlock()
	if wasRunning {
		<-done
	}
	return nil
}
