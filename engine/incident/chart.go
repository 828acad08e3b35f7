package incident

import (
	"fmt"
	"time"
)

// chart is the effectiveness chart's geometry, computed here so that the template only
// places shapes: one stacked bar per bucket (fixed, not fixed, rolled back, the other
// attempts), drawn as inline SVG on the server.
type chart struct {
	W, H, Left, Top, PlotW, PlotH int
	Max                           int
	Bars                          []bar
	XLabels                       []label
}

type bar struct {
	X, W  float64
	Title string
	Segs  []seg
}

type seg struct {
	Class string
	Y, H  float64
	Count int
}

type label struct {
	X      float64
	Text   string
	Anchor string // SVG text-anchor
}

// Chart classes, bottom up, and their colours (in the page's style).
var chartClasses = []string{"fixed", "not_fixed", "rolled_back", "other"}

func newChart(rep Report) chart {
	c := chart{W: 760, H: 230, Left: 40, Top: 10, PlotW: 700, PlotH: 180, Max: 1}
	for _, b := range rep.Buckets {
		c.Max = max(c.Max, b.Tried)
	}
	n := max(1, len(rep.Buckets))
	bw := float64(c.PlotW) / float64(n)
	width := rep.BucketSeconds.Duration()
	for i, b := range rep.Buckets {
		x := float64(c.Left) + float64(i)*bw
		other := max(0, b.Tried-b.Fixed-b.NotFixed-b.RolledBack)
		counts := []int{b.Fixed, b.NotFixed, b.RolledBack, other}
		br := bar{X: x + 1, W: max(1, bw-2), Title: fmt.Sprintf("%s: %d tried, %d fixed, %d not fixed, %d rolled back",
			b.Start.Format("2006-01-02 15:04Z"), b.Tried, b.Fixed, b.NotFixed, b.RolledBack)}
		y := float64(c.Top + c.PlotH)
		for j, cnt := range counts {
			if cnt == 0 {
				continue
			}
			h := float64(cnt) / float64(c.Max) * float64(c.PlotH)
			y -= h
			br.Segs = append(br.Segs, seg{Class: chartClasses[j], Y: y, H: h, Count: cnt})
		}
		c.Bars = append(c.Bars, br)
	}
	if len(rep.Buckets) > 0 {
		format := "01-02 15:04"
		if width >= 24*time.Hour {
			format = "2006-01-02"
		}
		for _, i := range []int{0, len(rep.Buckets) / 2} {
			c.XLabels = append(c.XLabels, label{X: float64(c.Left) + float64(i)*bw, Text: rep.Buckets[i].Start.Format(format), Anchor: "middle"})
		}
		c.XLabels = append(c.XLabels, label{X: float64(c.Left + c.PlotW), Text: rep.Until.Format(format), Anchor: "end"})
	}
	return c
}
