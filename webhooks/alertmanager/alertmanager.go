// Package alertmanager receives Alertmanager webhook notifications (payload version 4),
// maps each alert to a remedy signal and hands the batch to a signal.Sink. It answers 2xx
// only after the sink has recorded the whole batch durably, so Alertmanager's
// retry-until-2xx contract means no alert is lost.
//
// The payload is decoded with Alertmanager's own template.Data type, which costs the same
// to decode as notify/webhook.Message but pulls in far fewer packages.
package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/alertmanager/template"

	"github.com/remedyhq/remedy/webhooks/bearer"
	"github.com/remedyhq/remedy/wire/signal"
)

// Source is the signal source name of alerts received here.
const Source = "alertmanager"

// RetryAfter is the Retry-After (seconds) of a 503: the batch was not recorded (the
// audit log could not commit it) and must be sent again.
const RetryAfter = "5"

// DefaultMaxBody is the default request body limit.
const DefaultMaxBody = 1 << 20

// Message is the webhook payload: template.Data plus the envelope fields of version 4.
type Message struct {
	template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// Errors of Decode.
var (
	ErrEmpty    = errors.New("empty body")
	ErrVersion  = errors.New("unsupported webhook version")
	ErrNoAlerts = errors.New("payload has no alerts")
	ErrTrailing = errors.New("trailing data after JSON payload")
)

// Decode parses a webhook body.
func Decode(r io.Reader) (*Message, error) {
	dec := json.NewDecoder(r)
	var m Message
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, fmt.Errorf("decode webhook: %w", err)
	}
	if dec.More() {
		return nil, ErrTrailing
	}
	if m.Version != "" && m.Version != "4" {
		return nil, fmt.Errorf("%w %q (want \"4\")", ErrVersion, m.Version)
	}
	if len(m.Alerts) == 0 {
		return nil, ErrNoAlerts
	}
	return &m, nil
}

// Mapping turns alerts into signals.
type Mapping struct {
	// Kinds maps an alertname to a signal kind.
	Kinds map[string]signal.Kind
	// KindLabel, when an alert carries it, names the kind directly (checked first).
	KindLabel string
	// NodeLabels are tried in order for the node name; "instance" loses its port.
	NodeLabels []string
}

// DefaultMapping covers the alert names of remedy's PrometheusRule and common ones.
func DefaultMapping() Mapping {
	return Mapping{
		KindLabel: "remedy_kind",
		Kinds: map[string]signal.Kind{
			"NodeIRQSkew":          signal.KindIRQSkew,
			"RemedyIRQSkew":        signal.KindIRQSkew,
			"NodeNetworkDrops":     signal.KindPacketDrops,
			"NodePacketDrops":      signal.KindPacketDrops,
			"RemedyPacketDrops":    signal.KindPacketDrops,
			"NodeVMFreeze":         signal.KindVMFreeze,
			"RemedyVMFreeze":       signal.KindVMFreeze,
			"NodePressureHigh":     signal.KindPSI,
			"NodeCPUPressureHigh":  signal.KindPSI,
			"NodeMemPressureHigh":  signal.KindPSI,
			"NodeIOPressureHigh":   signal.KindPSI,
			"RemedyPressureStalls": signal.KindPSI,
		},
		NodeLabels: []string{"node", "kubernetes_node", "nodename", "hostname", "instance"},
	}
}

var kindSanitizer = regexp.MustCompile(`[^a-z0-9_]+`)
var camel = regexp.MustCompile(`([a-z0-9])([A-Z])`)

// kindOf returns the alert's signal kind: the kind label, the mapping, or the alertname
// in snake_case (a policy may handle any kind).
func (m Mapping) kindOf(labels template.KV) signal.Kind {
	if m.KindLabel != "" {
		if k := labels[m.KindLabel]; k != "" {
			return signal.Kind(k)
		}
	}
	name := labels["alertname"]
	if k, ok := m.Kinds[name]; ok {
		return k
	}
	s := strings.ToLower(camel.ReplaceAllString(name, "${1}_${2}"))
	return signal.Kind(strings.Trim(kindSanitizer.ReplaceAllString(s, "_"), "_"))
}

func (m Mapping) nodeOf(labels template.KV) string {
	for _, l := range m.NodeLabels {
		v := labels[l]
		if v == "" {
			continue
		}
		if l == "instance" {
			if h, _, err := net.SplitHostPort(v); err == nil {
				v = h
			}
		}
		return v
	}
	return ""
}

// Signals maps a message to signals, one per alert. Signals that fail validation (no
// node label, say) are returned too: the sink records them as rejected.
func (m Mapping) Signals(msg *Message) []signal.Signal {
	out := make([]signal.Signal, 0, len(msg.Alerts))
	for _, a := range msg.Alerts {
		raw, _ := json.Marshal(a)
		s := signal.Signal{
			Source:      Source,
			Kind:        m.kindOf(a.Labels),
			Node:        m.nodeOf(a.Labels),
			Status:      signal.Status(a.Status),
			Fingerprint: a.Fingerprint,
			StartsAt:    a.StartsAt.UTC(),
			Labels:      a.Labels,
			Annotations: a.Annotations,
			Raw:         raw,
		}
		if !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 {
			s.EndsAt = a.EndsAt.UTC()
		}
		if v, err := strconv.ParseFloat(a.Annotations["value"], 64); err == nil {
			s.Values = map[string]float64{"value": v}
		}
		out = append(out, s)
	}
	return out
}

// Options configure the handler.
type Options struct {
	Sink    signal.Sink
	Mapping Mapping
	// MaxBody bounds the request body (default 1 MiB); larger bodies get 413.
	MaxBody int64
	// MaxAlerts bounds the alerts of one webhook (default DefaultMaxAlerts; negative: no
	// bound); more get 413 with the reason and nothing is recorded. Alertmanager's
	// webhook_configs max_alerts, set at or below it, truncates instead.
	MaxAlerts int
	// BearerToken, when set, is required as "Authorization: Bearer <token>", which is
	// what Alertmanager's http_config.authorization sends.
	BearerToken string
	// Identify, when set, also admits the bearer token of a person (the approvers file):
	// it returns their identity, and every alert of the webhook is recorded as raised by
	// them (label RequesterLabel set to the identity, whatever the alert claimed).
	Identify func(token string) (identity string, ok bool)
	Logger   *slog.Logger
}

// RequesterLabel names the person who raised an alert (engine.RequesterLabel): they may
// not approve the actions it leads to.
const RequesterLabel = "remedy_requested_by"

// DefaultMaxAlerts is the default bound on the alerts of one webhook. Alertmanager
// groups by alertname and node in remedy's route, so a batch holds a handful; a
// thousand is a storm already.
const DefaultMaxAlerts = 1000

// Handler serves POST /webhooks/alertmanager.
type Handler struct {
	o Options
}

// NewHandler builds the webhook handler.
func NewHandler(o Options) *Handler {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxAlerts == 0 {
		o.MaxAlerts = DefaultMaxAlerts
	}
	if o.Mapping.NodeLabels == nil && o.Mapping.Kinds == nil {
		o.Mapping = DefaultMapping()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{o: o}
}

// authenticate admits the webhook token or a person's token (then who is their
// identity). Without a webhook token the webhook is open, as it was: a person's token,
// when one is sent, still makes them the alerts' requester.
func (h *Handler) authenticate(r *http.Request) (who string, ok bool) {
	if h.o.BearerToken != "" && bearer.Matches(r, h.o.BearerToken) {
		return "", true
	}
	if tok, found := bearer.FromRequest(r); found && h.o.Identify != nil {
		if who, ok := h.o.Identify(tok); ok {
			return who, true
		}
	}
	return "", h.o.BearerToken == ""
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "method %s not allowed, use POST", r.Method)
		return
	}
	who, ok := h.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="remedy"`)
		httpError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "content type %q not supported, use application/json", ct)
		return
	}
	if r.ContentLength > h.o.MaxBody {
		httpError(w, http.StatusRequestEntityTooLarge, "body of %d bytes exceeds the limit of %d", r.ContentLength, h.o.MaxBody)
		return
	}
	msg, err := Decode(http.MaxBytesReader(w, r.Body, h.o.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "body exceeds the limit of %d bytes", h.o.MaxBody)
			return
		}
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if h.o.MaxAlerts > 0 && len(msg.Alerts) > h.o.MaxAlerts {
		httpError(w, http.StatusRequestEntityTooLarge, "%d alerts exceed the limit of %d per webhook (set max_alerts in Alertmanager's webhook_configs)", len(msg.Alerts), h.o.MaxAlerts)
		return
	}
	sigs := h.o.Mapping.Signals(msg)
	if who != "" {
		for i := range sigs {
			labels := make(map[string]string, len(sigs[i].Labels)+1)
			maps.Copy(labels, sigs[i].Labels)
			labels[RequesterLabel] = who
			sigs[i].Labels = labels
		}
	}
	if err := h.o.Sink.Submit(r.Context(), sigs); err != nil {
		// Not recorded: Alertmanager must retry.
		h.o.Logger.Error("webhook not recorded", "alerts", len(sigs), "err", err)
		w.Header().Set("Retry-After", RetryAfter)
		httpError(w, http.StatusServiceUnavailable, "not recorded, retry: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"recorded","alerts":%d}`+"\n", len(sigs))
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": fmt.Sprintf(format, args...)})
	w.Write(append(b, '\n')) //nolint:errcheck // the client is gone if this fails
}
