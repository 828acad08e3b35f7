package app

import (
	"context"
	"sync"

	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/wire/signal"
)

// startKube connects to the cluster when o.Kube is set: the informer-backed facts become
// o.Facts (unless set), the cluster executors join o.ClusterExecutors, and the node
// condition source is returned for the consumers to run. Nil without o.Kube.
func (a *App) startKube(ctx context.Context, o *Options) (*kube.Cluster, error) {
	if o.Kube == nil {
		return nil, nil
	}
	ko := *o.Kube
	if ko.Logger == nil {
		ko.Logger = o.Logger
	}
	kc, err := kube.New(ko)
	if err != nil {
		return nil, err
	}
	if err := kc.Start(ctx); err != nil {
		kc.Stop()
		return nil, err
	}
	a.kube = kc
	if o.Facts == nil {
		o.Facts = kc.Facts
	}
	o.ClusterExecutors = append(o.ClusterExecutors, kc.Executors...)
	return kc, nil
}

// consume runs the consumers — the JetStream consumers and, in a cluster, the node
// condition source — on this replica, or only while it holds the Lease when leader
// election is on. Intake (the webhook) runs on every replica regardless.
func (a *App) consume(ctx context.Context, sink signal.Sink, consumers ...func(context.Context) error) error {
	if a.kube != nil {
		w, err := a.kube.Conditions(sink)
		if err != nil {
			return err
		}
		if w != nil {
			consumers = append(consumers, w.Run)
		}
	}
	work := func(ctx context.Context) {
		a.leading.Set(1)
		defer a.leading.Set(0)
		var wg sync.WaitGroup
		for _, c := range consumers {
			wg.Go(func() {
				if err := c(ctx); err != nil {
					a.log.Error("consumer stopped", "err", err)
				}
			})
		}
		wg.Wait()
	}
	if a.kube == nil {
		work(ctx)
		return nil
	}
	return a.kube.Lead(ctx, work)
}
