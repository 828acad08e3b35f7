// Package detectors builds the node agent's full set of detectors from one set of
// options, for `remedy-agent run` and `remedy-agent scan`.
package detectors

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/drops"
	"github.com/remedyhq/remedy/agent/detect/freeze"
	"github.com/remedyhq/remedy/agent/detect/irq"
	"github.com/remedyhq/remedy/agent/detect/psi"
	"github.com/remedyhq/remedy/nodefs"
)

// Options configure every detector.
type Options struct {
	// HostRoot is where the host's / is mounted ("/" on the host, "/host" in a pod).
	HostRoot string
	// Interfaces limits the NICs the irq and drops detectors watch; empty means every
	// interface backed by a device.
	Interfaces []string
	// Interval is the scan interval; the freeze detector flags scans that come late.
	Interval time.Duration
	// DriverStats reads `ethtool -S` counters in the agent's network namespace.
	DriverStats bool
	// IMDSEndpoint enables Azure Scheduled Events (freeze.DefaultAzureEndpoint); VMName
	// keeps the events naming this VM.
	IMDSEndpoint string
	VMName       string
	HTTPClient   *http.Client
	// CgroupRoot overrides where cgroup v2 is mounted below HostRoot ("-" for none).
	CgroupRoot string
	// Disable names detectors to leave out ("irq", "drops", "psi", "freeze").
	Disable []string
	// Registerer registers every detector's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the detectors' clock for rates; time.Now when nil.
	Now func() time.Time
}

// Detectors is the built set; Close releases what they hold (the ethtool socket).
type Detectors struct {
	List  []detect.Detector
	close []func()
}

// Close releases the detectors' resources.
func (d *Detectors) Close() {
	for _, c := range d.close {
		c()
	}
}

// New builds the detectors o asks for.
func New(o Options) (*Detectors, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	fs, err := nodefs.New(o.HostRoot)
	if err != nil {
		return nil, fmt.Errorf("detectors: %w", err)
	}
	off := map[string]bool{}
	for _, n := range o.Disable {
		switch n {
		case "irq", "drops", "psi", "freeze":
			off[n] = true
		default:
			return nil, fmt.Errorf("detectors: unknown detector %q", n)
		}
	}
	out := &Detectors{}
	add := func(d detect.Detector, err error) error {
		if err != nil {
			return err
		}
		out.List = append(out.List, d)
		return nil
	}
	var errs []error
	if !off["irq"] {
		errs = append(errs, add(irq.New(fs, irq.Options{Interfaces: o.Interfaces, Registerer: o.Registerer, Now: o.Now})))
	}
	if !off["drops"] {
		dopts := drops.Options{Interfaces: o.Interfaces, Registerer: o.Registerer, Now: o.Now}
		if o.DriverStats {
			stats, closeStats, err := drops.EthtoolStats()
			if err != nil {
				o.Logger.Warn("driver statistics unavailable", "err", err)
			} else {
				dopts.DriverStats = stats
				out.close = append(out.close, closeStats)
			}
		}
		errs = append(errs, add(drops.New(fs, dopts)))
	}
	if !off["psi"] {
		errs = append(errs, add(psi.New(fs, psi.Options{CgroupRoot: o.CgroupRoot, Registerer: o.Registerer, Now: o.Now})))
	}
	if !off["freeze"] {
		errs = append(errs, add(freeze.New(freeze.Options{IMDSEndpoint: o.IMDSEndpoint, VMName: o.VMName,
			HTTPClient: o.HTTPClient, Interval: o.Interval, Registerer: o.Registerer})))
	}
	if err := errors.Join(errs...); err != nil {
		out.Close()
		return nil, err
	}
	if len(out.List) == 0 {
		return nil, detect.ErrNoDetectors
	}
	return out, nil
}
