package detectors_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detectors"
	"github.com/remedyhq/remedy/wire/signal"
)

// Example wires the detectors into remedy-agent run: build them from options, hand
// them to a runner with the node's name, a Publisher (NATS in the agent) and the
// agent's metrics registry, and run it until the agent stops.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	reg := prometheus.NewRegistry() // served on the agent's /metrics
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ds, err := detectors.New(detectors.Options{
		HostRoot:    "/", // "/host" in the DaemonSet
		Interval:    time.Second,
		DriverStats: true,
		// IMDSEndpoint: freeze.DefaultAzureEndpoint, VMName: ... on Azure
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		log.Error("detectors", "err", err)
		return
	}
	defer ds.Close()
	// In the agent: encode with signal.EncodeCloudEvent and publish on s.Subject()
	// with s.Key() as the JetStream message id.
	pub := detect.PublisherFunc(func(ctx context.Context, s signal.Signal) error {
		_, err := signal.EncodeCloudEvent(&s, "remedy-agent")
		return err
	})
	r, err := detect.NewRunner(detect.Options{
		Node: "node-1", Interval: time.Second, FireAfter: 3,
		Publisher: pub, Registerer: reg, Logger: log,
	}, ds.List...)
	if err != nil {
		log.Error("runner", "err", err)
		return
	}
	_ = r.Run(ctx) // returns when ctx ends
	// Output:
}
