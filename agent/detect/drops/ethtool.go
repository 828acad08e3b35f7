package drops

import (
	"fmt"

	"github.com/safchain/ethtool"
)

// EthtoolStats opens an ethtool handle and returns a StatsFunc reading `ethtool -S`
// counters, and a function to close the handle. The handle works in the agent's own
// network namespace, whatever the host root: a containerised agent needs hostNetwork.
func EthtoolStats() (StatsFunc, func(), error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return nil, nil, fmt.Errorf("drops: open ethtool: %w", err)
	}
	return e.Stats, e.Close, nil
}
