// Package kubeaction holds what remedy's cluster actions share: the annotations that
// record who changed a node and why, the Kubernetes Event each action leaves behind, and
// the optimistic-concurrency patch that keeps remedy from overwriting a person's change
// made between its read and its write.
//
// It is engine-side only: the node agent never imports client-go.
package kubeaction

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/executors"
)

// Annotations remedy writes on the objects it changes.
const (
	// AnnotationCordonedBy marks a node remedy cordoned; its value is the engine's
	// identity. node.uncordon only uncordons nodes that carry it. Removing it hands the
	// cordon over to people: remedy will then never uncordon the node.
	AnnotationCordonedBy = "remedy.dev/cordoned-by"
	// AnnotationCordonedAt is when remedy cordoned the node (RFC 3339).
	AnnotationCordonedAt = "remedy.dev/cordoned-at"
	// AnnotationReason is the decision's reason for the last remedy change.
	AnnotationReason = "remedy.dev/reason"
	// AnnotationCorrelationID ties the last remedy change to its signal and decision.
	AnnotationCorrelationID = "remedy.dev/correlation-id"
	// AnnotationTaints lists the taints remedy added ("key:effect", comma-separated);
	// node.untaint removes only those.
	AnnotationTaints = "remedy.dev/taints"
	// AnnotationLabels lists the label keys remedy set; node.label removes only those.
	AnnotationLabels = "remedy.dev/labels"
)

// Component is the event source remedy reports as.
const Component = "remedy"

// Deps are what every cluster action needs.
type Deps struct {
	Client kubernetes.Interface
	Logger *slog.Logger
	// Identity names this engine instance in annotations and Events (e.g. the pod name).
	Identity string
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// WithDefaults fills unset fields.
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Identity == "" {
		d.Identity = Component
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Event types, as Kubernetes knows them.
const (
	Normal  = corev1.EventTypeNormal
	Warning = corev1.EventTypeWarning
)

// Event records a Kubernetes Event about obj. Failing to record is logged, never fatal:
// the change itself has been made and audited by then. Node events live in "default",
// like the kubelet's, so that `kubectl describe node` shows them.
func (d Deps) Event(ctx context.Context, ref corev1.ObjectReference, eventType, reason, action string, req executors.Request, msg string) {
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	now := metav1.NewTime(d.Now())
	if req.CorrelationID != "" {
		msg += " (correlation " + req.CorrelationID + ")"
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ref.Name + ".remedy-",
			Namespace:    ns,
			Annotations:  map[string]string{AnnotationCorrelationID: req.CorrelationID},
		},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             msg,
		Type:                eventType,
		Source:              corev1.EventSource{Component: Component},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		Action:              action,
		ReportingController: "remedy.dev/engine",
		ReportingInstance:   d.Identity,
	}
	if _, err := d.Client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		d.Logger.Warn("record event", "reason", reason, "object", ref.Name, "err", err)
	}
}

// NodeRef is the Event reference of a node.
func NodeRef(n *corev1.Node) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID}
}

// PodRef is the Event reference of a pod.
func PodRef(p *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}
}

// Who returns the who/why annotations of a change made for req.
func (d Deps) Who(req executors.Request) map[string]*string {
	return map[string]*string{
		AnnotationReason:        ptr(req.Reason),
		AnnotationCorrelationID: ptr(req.CorrelationID),
	}
}

func ptr(s string) *string { return &s }

// NodePatch is a JSON merge patch of a node's metadata and spec. Nil values in the maps
// delete the key.
type NodePatch struct {
	Annotations map[string]*string
	Labels      map[string]*string
	Spec        map[string]any
}

// PatchNode applies p to the node read at n.ResourceVersion. The resourceVersion in the
// patch makes the API server refuse it (409) when anyone changed the node since it was
// read; the caller re-reads and decides again rather than overwriting a person's change.
func (d Deps) PatchNode(ctx context.Context, n *corev1.Node, p NodePatch) (*corev1.Node, error) {
	meta := map[string]any{"resourceVersion": n.ResourceVersion}
	if len(p.Annotations) > 0 {
		meta["annotations"] = p.Annotations
	}
	if len(p.Labels) > 0 {
		meta["labels"] = p.Labels
	}
	body := map[string]any{"metadata": meta}
	if len(p.Spec) > 0 {
		body["spec"] = p.Spec
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("patch node %s: %w", n.Name, err)
	}
	out, err := d.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, raw, metav1.PatchOptions{FieldManager: Component})
	if err != nil {
		return nil, fmt.Errorf("patch node %s: %w", n.Name, err)
	}
	return out, nil
}

// RetryConflicts runs fn until it does not fail with a conflict, a few times at most:
// each attempt re-reads the node and decides again.
func RetryConflicts(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range 5 {
		if err = fn(); !apierrors.IsConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return err
}

// GetNode reads a node.
func (d Deps) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	n, err := d.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	return n, nil
}

// OwnedSet reads a comma-separated set annotation (AnnotationTaints, AnnotationLabels).
func OwnedSet(annotations map[string]string, key string) []string {
	v := annotations[key]
	if v == "" {
		return nil
	}
	out := strings.Split(v, ",")
	sort.Strings(out)
	return slices.Compact(out)
}

// FormatSet is the annotation value of a set, or nil (delete) when it is empty.
func FormatSet(items []string) *string {
	if len(items) == 0 {
		return nil
	}
	items = slices.Clone(items)
	sort.Strings(items)
	s := strings.Join(slices.Compact(items), ",")
	return &s
}

// CheckNode is the check every node action makes on req before touching anything.
func CheckNode(req executors.Request) error {
	if req.Node == "" {
		return fmt.Errorf("%w: request has no node", executors.ErrBadParams)
	}
	return nil
}

// Begin is how every cluster action starts: it checks that the request names a node and
// is not past its deadline, and bounds ctx by the deadline. A non-nil Result is the
// answer to return at once.
func Begin(ctx context.Context, req executors.Request, start time.Time) (context.Context, context.CancelFunc, *executors.Result) {
	if err := CheckNode(req); err != nil {
		r := executors.Failure(req, start, executors.Refused, err)
		return ctx, func() {}, &r
	}
	if !req.Deadline.IsZero() {
		if !start.Before(req.Deadline) {
			r := executors.Failure(req, start, executors.Expired, fmt.Errorf("deadline %s passed", req.Deadline.Format(time.RFC3339)))
			return ctx, func() {}, &r
		}
		c, cancel := context.WithDeadline(ctx, req.Deadline)
		return c, cancel, nil
	}
	return ctx, func() {}, nil
}

// Check is CheckParams for an action whose parameters are T.
func Check[T any, PT interface {
	*T
	executors.Validator
}](raw json.RawMessage) error {
	_, err := executors.DecodeParams[T, PT](raw)
	return err
}

// Run is the common shape of Execute: decode and validate the parameters (refusing the
// request when they are bad), check the node and deadline (Begin), then call fn.
func Run[T any, PT interface {
	*T
	executors.Validator
}](ctx context.Context, req executors.Request, fn func(ctx context.Context, p T, start time.Time) executors.Result) executors.Result {
	start := time.Now().UTC()
	p, err := executors.DecodeParams[T, PT](req.Params)
	if err != nil {
		return executors.Failure(req, start, executors.Refused, err)
	}
	ctx, cancel, early := Begin(ctx, req, start)
	defer cancel()
	if early != nil {
		return *early
	}
	return fn(ctx, p, start)
}

// ChangeNode reads req.Node and lets decide compute (and make) the change, again from a
// fresh read whenever the patch met a conflict. An error fails the action, prefixed by
// what (e.g. "cordon").
func (d Deps) ChangeNode(ctx context.Context, req executors.Request, start time.Time, what string,
	decide func(n *corev1.Node) (executors.Result, error)) executors.Result {
	var res executors.Result
	err := RetryConflicts(ctx, func() error {
		n, err := d.GetNode(ctx, req.Node)
		if err != nil {
			return err
		}
		res, err = decide(n)
		return err
	})
	if err != nil {
		return executors.Failure(req, start, executors.Failed, fmt.Errorf("%s: %w", what, err))
	}
	return executors.Finish(req, start, res)
}
