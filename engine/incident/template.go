package incident

import (
	"html/template"
	"strconv"
	"strings"
	"time"
)

var layout = template.Must(template.New("layout").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"dur":  FormatSeconds,
	"join": strings.Join,
	"f1":   func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"open": IsOpen,
	"pct":  FormatRatio,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em 2em;max-width:80em;color:#222}
nav a{margin-right:1.2em}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.err{background:#fbe3e3;padding:.5em}.status span{display:inline-block;padding:.2em .6em;margin-right:.5em;border-radius:3px;background:#e8f5e9}
.status span.bad{background:#fdecea;font-weight:bold}
.o-fixed{color:#1b5e20;font-weight:bold}.o-not_fixed,.o-failed,.o-rolled_back{color:#b71c1c;font-weight:bold}
.o-open{color:#e65100;font-weight:bold}
form.filter label{margin-right:.8em}form.filter input,form.filter select{width:12em}
ol.timeline{list-style:none;padding:0;border-left:3px solid #90a4ae;margin-left:.5em}
ol.timeline li{margin:0 0 .8em 0;padding-left:1em;position:relative}
ol.timeline li:before{content:"";position:absolute;left:-.5em;top:.35em;width:.7em;height:.7em;border-radius:50%;background:#90a4ae}
ol.timeline li.st-verification:before{background:#2e7d32}ol.timeline li.st-escalation:before{background:#c62828}
.stage{display:inline-block;min-width:6.5em;font-weight:bold;text-transform:uppercase;font-size:.8em;color:#455a64}
.meta{color:#555;font-size:.9em}pre{white-space:pre-wrap;max-height:16em;overflow:auto;margin:0;font-size:.85em}
svg .fixed{fill:#2e7d32}svg .not_fixed{fill:#ef6c00}svg .rolled_back{fill:#c62828}svg .other{fill:#9e9e9e}
svg text{font-size:11px;fill:#444}svg line{stroke:#888}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
</style></head><body>
<nav><a href="/incidents" id="nav-list">Incidents</a><a href="/incidents/effectiveness" id="nav-eff">Effectiveness</a><a href="/approvals">Approvals</a>
{{if .Who.Name}}<span class="meta">signed in as <b id="who">{{.Who.Name}}</b> ({{.Who.Role}})</span>{{end}}</nav>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if eq .View "login"}}{{template "login" .}}
{{else if eq .View "list"}}{{template "list" .}}
{{else if eq .View "incident"}}{{with .Inc}}{{template "incident" .}}{{end}}
{{else if eq .View "effectiveness"}}{{template "effectiveness" .}}{{end}}
</body></html>

{{define "login"}}<h1>Incidents</h1>
<form method="post" action="{{.Login.Action}}"><label>Token <input type="password" name="token" id="token" autocomplete="off"></label>
{{if .Login.CSRF}}<input type="hidden" name="csrf" value="{{.Login.CSRF}}">{{end}}<input type="hidden" name="next" value="{{.Login.Next}}">
<button type="submit" id="login">Log in</button></form>
<p class="meta">The same login and roles as the approvals page; any role may view.</p>{{end}}

{{define "status"}}<p class="status" id="status">
{{if .State}}{{if .State.Paused}}<span class="bad" id="killswitch">kill switch: PAUSED</span>{{else}}<span id="killswitch">kill switch: running</span>{{end}}
{{if .State.Tripped}}{{range .State.Tripped}}<span class="bad breaker">breaker open: {{.}}</span>{{end}}{{else}}<span id="breakers">breakers: all closed</span>{{end}}{{end}}
<span id="pending-count">{{len .Pending}} pending approval{{if ne (len .Pending) 1}}s{{end}}</span>
<span id="open-count">{{len .Open}} open incident{{if ne (len .Open) 1}}s{{end}}</span></p>
{{if .Pending}}<h2>Waiting for approval</h2><table id="pending"><tr><th>Action</th><th>Node</th><th>Incident</th><th>Requested</th><th>Expires</th><th>Votes</th></tr>
{{range .Pending}}<tr><td><a href="/approvals">{{.Action}}</a></td><td>{{.Node}}</td><td><a href="/incidents/{{.CorrelationID}}">{{.CorrelationID}}</a></td>
<td>{{ts .RequestedAt}}</td><td>{{ts .ExpiresAt}}</td><td class="n">{{.Votes}} of {{.Need}}</td></tr>{{end}}</table>{{end}}
{{if .Open}}<h2>Open now</h2>{{template "rows" .Open}}{{end}}{{end}}

{{define "rows"}}<table class="incidents"><tr><th>Incident</th><th>Node</th><th>Kind</th><th>Actions</th><th>Outcome</th><th>Started</th><th>Last event</th><th>Events</th></tr>
{{range .}}<tr id="inc-{{.ID}}"><td><a href="/incidents/{{.ID}}">{{.ID}}</a></td><td>{{.Node}}</td><td>{{.Kind}}</td><td>{{join .Actions ", "}}</td>
<td class="{{if open .Outcome}}o-open{{else}}o-{{.Outcome}}{{end}}">{{.Outcome}}</td><td>{{ts .Started}}</td><td>{{ts .Updated}}</td><td class="n">{{.Events}}</td></tr>{{end}}</table>{{end}}

{{define "list"}}<h1>Incidents</h1>{{template "status" .}}
<h2>All incidents</h2>
<form class="filter" method="get" action="/incidents">
<label>Node <input name="node" id="f-node" value="{{.List.Form.Get "node"}}"></label>
<label>Kind <input name="kind" id="f-kind" value="{{.List.Form.Get "kind"}}"></label>
<label>Outcome <select name="outcome" id="f-outcome"><option value="">any</option>{{$o := .List.Form.Get "outcome"}}{{range .List.Outcomes}}<option{{if eq . $o}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>Since <input name="since" id="f-since" placeholder="24h or 2026-12-03T10:00" value="{{.List.Form.Get "since"}}"></label>
<label>Until <input name="until" id="f-until" value="{{.List.Form.Get "until"}}"></label>
<button type="submit" id="filter">Filter</button></form>
{{with .List}}{{if .Page.Incidents}}{{template "rows" .Page.Incidents}}{{else}}<p id="none">No incident matches.</p>{{end}}
<p class="meta">{{len .Page.Incidents}} shown, {{.Page.Examined}} index entries read.{{if .Page.Cut}} The page stopped at its reading bound: narrow the filter.{{end}}
{{if .NextURL}}<a href="{{.NextURL}}" id="next">Older incidents</a>{{end}}</p>{{end}}{{end}}

{{define "incident"}}<h1>Incident <code id="inc-id">{{.ID}}</code></h1>
<p id="inc-summary"><b>{{.Kind}}</b> on <b>{{.Node}}</b>; outcome <span class="{{if open .Outcome}}o-open{{else}}o-{{.Outcome}}{{end}}" id="inc-outcome">{{.Outcome}}</span>;
actions: {{join .Actions ", "}}; {{.Signals}} signal(s); from {{ts .Started}} to {{ts .Updated}}{{if .PolicyRev}}; policy {{.PolicyRev}}{{end}}.
<a href="/api/v1/audit/incidents/{{.ID}}">raw events (JSON)</a></p>
<ol class="timeline" id="timeline">{{range .Steps}}<li class="st-{{.Stage}}" id="step-{{.Seq}}" data-stage="{{.Stage}}">
<span class="stage">{{.Stage}}</span> <b>{{.Type}}</b>{{if .Outcome}} → <b class="outcome">{{.Outcome}}</b>{{end}}
<span class="meta">at {{ts .Time}}{{if .Actor}} by <span class="actor">{{.Actor}}</span>{{end}}{{if .Action}} · {{.Action}}{{end}}{{if .ActionID}} <code>{{.ActionID}}</code>{{end}}{{if .PolicyRev}} · policy revision <code class="rev">{{.PolicyRev}}</code>{{end}}</span>
{{if .Text}}<div class="text">{{.Text}}</div>{{end}}
{{if .Changes}}<table class="changes"><tr><th>value</th><th>before</th><th>after</th></tr>{{range .Changes}}<tr><td><code>{{.Key}}</code></td><td class="before">{{.Before}}</td><td class="after">{{.After}}</td></tr>{{end}}</table>{{end}}
{{if .Escalated}}<div>escalated to <a href="/incidents/{{.Escalated}}" class="escalated">{{.Escalated}}</a></div>{{end}}
{{if .Detail}}<details><summary>detail</summary><pre>{{printf "%s" .Detail}}</pre></details>{{end}}
</li>{{end}}</ol>{{end}}

{{define "effectiveness"}}<h1>Effectiveness</h1>
<form class="filter" method="get" action="/incidents/effectiveness">
<label>Since <input name="since" id="r-since" value="{{.Report.Since}}"></label><label>Until <input name="until" id="r-until" value="{{.Report.Until}}"></label>
<button type="submit" id="range">Show</button></form>
{{with .Report}}{{with .Report}}<p class="meta" id="range-shown">Attempts whose first result is in [{{ts .Since}}, {{ts .Until}}); dry runs are not attempts. Fix time: first signal to the resolved signal that verified the fix.</p>
<h2>Per action</h2>{{template "figs" .ByAction}}
<h2>Per signal kind</h2>{{template "figs" .ByKind}}
<table id="total"><tr><th>All</th><th>tried</th><th>succeeded</th><th>failed</th><th>rolled back</th><th>fixed (verified)</th><th>not fixed</th><th>fixed / tried</th><th>fix p50</th><th>fix p90</th></tr>
<tr><td>all</td>{{template "figrow" .Total}}</tr></table>{{end}}
<h2>Over time</h2>
{{with .Chart}}<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="attempts per bucket">
<line x1="{{.Left}}" y1="{{.Top}}" x2="{{.Left}}" y2="{{add .Top .PlotH}}"/><line x1="{{.Left}}" y1="{{add .Top .PlotH}}" x2="{{add .Left .PlotW}}" y2="{{add .Top .PlotH}}"/>
<text x="{{sub .Left 6}}" y="{{add .Top 10}}" text-anchor="end">{{.Max}}</text><text x="{{sub .Left 6}}" y="{{add .Top .PlotH}}" text-anchor="end">0</text>
{{range .Bars}}<g><title>{{.Title}}</title>{{$b := .}}{{range .Segs}}<rect class="{{.Class}}" data-count="{{.Count}}" x="{{f1 $b.X}}" y="{{f1 .Y}}" width="{{f1 $b.W}}" height="{{f1 .H}}"/>{{end}}</g>{{end}}
{{$y := add (add .Top .PlotH) 16}}{{range .XLabels}}<text x="{{f1 .X}}" y="{{$y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>{{end}}
</svg>{{end}}
<p class="legend"><span style="background:#2e7d32"></span>fixed<span style="background:#ef6c00"></span>not fixed<span style="background:#c62828"></span>rolled back<span style="background:#9e9e9e"></span>other attempts (failed, unverified)</p>
<p class="meta">One bar per {{dur .Report.BucketSeconds}}. The same figures: <code>GET /api/v1/report?since=…&amp;until=…</code>, <code>remedy report --since … --until …</code>.</p>{{end}}{{end}}

{{define "figs"}}<table class="figs"><tr><th>name</th><th>tried</th><th>succeeded</th><th>failed</th><th>rolled back</th><th>fixed (verified)</th><th>not fixed</th><th>fixed / tried</th><th>fix p50</th><th>fix p90</th></tr>
{{range .}}<tr id="fig-{{.Name}}"><td>{{.Name}}</td>{{template "figrow" .Figures}}</tr>{{else}}<tr><td colspan="10">no attempts in this range</td></tr>{{end}}</table>{{end}}

{{define "figrow"}}<td class="n tried">{{.Tried}}</td><td class="n succeeded">{{.Succeeded}}</td><td class="n failed">{{.Failed}}</td><td class="n rolled_back">{{.RolledBack}}</td>
<td class="n fixed">{{.Fixed}}</td><td class="n not_fixed">{{.NotFixed}}</td><td class="n">{{pct .Fixed .Tried}}</td><td class="n p50">{{dur .FixP50}}</td><td class="n p90">{{dur .FixP90}}</td>{{end}}
`))
