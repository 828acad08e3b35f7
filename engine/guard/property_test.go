package guard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/facts"
)

// liveFacts is a cluster the test changes: people cordon and uncordon, remedy's cordons
// land some steps after they are allowed.
type liveFacts struct{ nodes map[string]facts.Node }

func (l *liveFacts) Node(_ context.Context, name string) (facts.Node, error) {
	n, ok := l.nodes[name]
	n.Name, n.Known = name, ok
	return n, nil
}

func (l *liveFacts) Cluster(context.Context) (facts.Cluster, error) {
	c := facts.Cluster{Nodes: len(l.nodes), CordonedBy: map[string]map[string]int{"zone": {}}}
	for _, n := range l.nodes {
		if n.Unschedulable {
			c.Cordoned++
			c.CordonedBy["zone"][n.Labels["zone"]]++
		}
	}
	return c, nil
}

type listingFacts struct{ *liveFacts }

func (l listingFacts) List(context.Context) ([]facts.Node, error) {
	var out []facts.Node
	for name, n := range l.nodes {
		n.Name, n.Known = name, true
		out = append(out, n)
	}
	return out, nil
}

// TestNoSequenceExceedsBlastRadius tries random sequences of alerts, human cordons and
// uncordons, lagging facts and time: whenever remedy takes a node out, the nodes out
// (cordoned by anyone, or remedy's not yet visible) stay within every limit.
func TestNoSequenceExceedsBlastRadius(t *testing.T) {
	cfg := must(t, "blast_radius: [{name: cluster, max_nodes: 6, max_percent: 20}, {name: zone, group_by: zone, max_nodes: 2}]")
	seeds := uint64(40)
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		for _, listing := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(seed, 7))
			live := &liveFacts{nodes: map[string]facts.Node{}}
			for i := range 40 {
				live.nodes[fmt.Sprintf("n%d", i)] = facts.Node{Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%4)}}
			}
			var prov facts.Provider = live
			if listing {
				prov = listingFacts{live}
			}
			clk := newClock()
			g := New(Options{Config: cfg, Facts: prov, Now: clk.now})
			pending := map[string]int{} // node -> steps until remedy's cordon shows
			outNow := func(zone string) int {
				n := 0
				for name, f := range live.nodes {
					_, p := pending[name]
					if (f.Unschedulable || p) && (zone == "" || f.Labels["zone"] == zone) {
						n++
					}
				}
				return n
			}
			for step := range 400 {
				clk.add(time.Duration(rng.IntN(30)) * time.Second)
				for name, left := range pending {
					if left == 0 {
						f := live.nodes[name]
						f.Unschedulable, f.CordonedBy = true, "remedy"
						live.nodes[name] = f
						delete(pending, name)
					} else {
						pending[name] = left - 1
					}
				}
				name := fmt.Sprintf("n%d", rng.IntN(40))
				f := live.nodes[name]
				switch r := rng.IntN(10); {
				case r == 0: // a person cordons
					f.Unschedulable, f.CordonedBy = true, "other"
					live.nodes[name] = f
				case r == 1: // a person uncordons
					if _, p := pending[name]; !p {
						f.Unschedulable, f.CordonedBy = false, ""
						live.nodes[name] = f
					}
				default: // an alert asks remedy to cordon
					c := Candidate{ActionID: fmt.Sprintf("%d-%d", seed, step), Action: "node.cordon", Node: name, Kind: "k",
						SignalKey: fmt.Sprint(step), NodeFacts: f}
					c.Cluster, _ = live.Cluster(context.Background())
					_, already := pending[name]
					if v := g.Check(context.Background(), c); v.Outcome == Allow && !f.Unschedulable && !already {
						zone := f.Labels["zone"]
						if outNow("") >= 6 || outNow("") >= 8 || outNow(zone) >= 2 {
							t.Fatalf("seed %d listing %v step %d: took %s out with %d out in the cluster, %d in %s: %+v",
								seed, listing, step, name, outNow(""), outNow(zone), zone, v.Blast)
						}
						pending[name] = rng.IntN(4)
					}
				}
			}
		}
	}
}
