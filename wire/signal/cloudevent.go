package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CloudEvent type and version used for signals. The envelope is CloudEvents 1.0 in
// structured JSON mode. It is encoded here by hand rather than with the CloudEvents SDK
// because the node agent must stay lean and the envelope is eight fields.
const (
	CloudEventType    = "dev.remedy.signal.v1"
	CloudEventVersion = "1.0"
)

// CloudEvent is the structured-mode JSON envelope of a signal.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// MaxEventSize bounds a decoded CloudEvent; larger events are rejected unread.
const MaxEventSize = 256 << 10

// Sentinel errors of DecodeCloudEvent.
var (
	ErrEventTooLarge = errors.New("cloudevent too large")
	ErrNotCloudEvent = errors.New("not a remedy signal cloudevent")
)

// EncodeCloudEvent wraps a signal in a CloudEvent whose id is the signal's key, so a
// JetStream duplicate window drops repeats.
func EncodeCloudEvent(s *Signal, source string) ([]byte, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode signal: %w", err)
	}
	return json.Marshal(CloudEvent{
		SpecVersion:     CloudEventVersion,
		ID:              s.Key(),
		Source:          source,
		Type:            CloudEventType,
		Subject:         s.Node + "/" + string(s.Kind),
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
	})
}

// DecodeCloudEvent parses and validates a signal CloudEvent.
func DecodeCloudEvent(b []byte) (*Signal, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrEventTooLarge, len(b), MaxEventSize)
	}
	var ev CloudEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("decode cloudevent: %w", err)
	}
	if ev.SpecVersion != CloudEventVersion {
		return nil, fmt.Errorf("%w: specversion %q, want %q", ErrNotCloudEvent, ev.SpecVersion, CloudEventVersion)
	}
	if ev.Type != CloudEventType {
		return nil, fmt.Errorf("%w: type %q, want %q", ErrNotCloudEvent, ev.Type, CloudEventType)
	}
	if ev.ID == "" || ev.Source == "" {
		return nil, fmt.Errorf("%w: id and source are required", ErrNotCloudEvent)
	}
	if len(ev.Data) == 0 {
		return nil, fmt.Errorf("%w: no data", ErrNotCloudEvent)
	}
	var s Signal
	if err := json.Unmarshal(ev.Data, &s); err != nil {
		return nil, fmt.Errorf("decode signal data: %w", err)
	}
	if s.Source == "" {
		s.Source = ev.Source
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = ev.Time
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Raw == nil {
		s.Raw = append(json.RawMessage(nil), b...)
	}
	return &s, nil
}
