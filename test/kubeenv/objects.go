package kubeenv

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// There is no kubelet, scheduler or controller-manager: these helpers write the status
// those would write, so that objects look as they do in a live cluster.

// CreateNode creates a Ready node with 4 allocatable CPUs and the given labels.
func CreateNode(ctx context.Context, c kubernetes.Interface, name string, labels map[string]string) (*corev1.Node, error) {
	n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	now := metav1.Now()
	n.Status = corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3920m"), corev1.ResourcePods: resource.MustParse("110")},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now}},
	}
	if n, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("node %s status: %w", name, err)
	}
	return n, nil
}

// SetNodeCondition sets (adds or replaces) one condition in a node's status, as
// node-problem-detector does; the transition time moves only when the status changes.
func SetNodeCondition(ctx context.Context, c kubernetes.Interface, node string, cond corev1.NodeCondition) error {
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", node, err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	cond.LastHeartbeatTime = now
	replaced := false
	for i, old := range n.Status.Conditions {
		if old.Type == cond.Type {
			cond.LastTransitionTime = old.LastTransitionTime
			if old.Status != cond.Status {
				cond.LastTransitionTime = now
			}
			n.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		cond.LastTransitionTime = now
		n.Status.Conditions = append(n.Status.Conditions, cond)
	}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s condition %s: %w", node, cond.Type, err)
	}
	return nil
}

// EnsureNamespace creates a namespace unless it exists.
func EnsureNamespace(ctx context.Context, c kubernetes.Interface, name string) error {
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// PodSpec describes a pod to create with CreateRunningPod.
type PodSpec struct {
	Namespace, Name, Node string
	Labels                map[string]string
	Annotations           map[string]string
	// OwnerKind is the controller's kind ("ReplicaSet", "DaemonSet", ...); empty for a
	// bare pod. The owner object itself is not created: nothing here garbage-collects.
	OwnerKind string
	EmptyDir  bool
	// ServiceAccount runs the pod (default: none named).
	ServiceAccount string
	// Phase is the status phase to write; default Running (and Ready).
	Phase corev1.PodPhase
}

// CreateRunningPod creates a pod bound to a node and writes a Running + Ready status (a
// Pending pod is not protected by disruption budgets).
func CreateRunningPod(ctx context.Context, c kubernetes.Interface, s PodSpec) (*corev1.Pod, error) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations},
		Spec: corev1.PodSpec{
			NodeName:           s.Node,
			ServiceAccountName: s.ServiceAccount,
			Containers:         []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
		},
	}
	if s.OwnerKind != "" {
		ctrl := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: s.OwnerKind, Name: s.Name + "-owner",
			UID: types.UID("00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(s.Name))), Controller: &ctrl}}
	}
	if s.EmptyDir {
		p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	p, err := c.CoreV1().Pods(s.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", s.Namespace, s.Name, err)
	}
	now := metav1.Now()
	phase := s.Phase
	if phase == "" {
		phase = corev1.PodRunning
	}
	ready := corev1.ConditionFalse
	if phase == corev1.PodRunning {
		ready = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{
		Phase:     phase,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
		},
	}
	if p, err = c.CoreV1().Pods(s.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("pod %s/%s status: %w", s.Namespace, s.Name, err)
	}
	return p, nil
}

// CreatePDB creates a PodDisruptionBudget over selector and writes the status the
// disruption controller would: allowed disruptions as given, observed generation current.
func CreatePDB(ctx context.Context, c kubernetes.Interface, ns, name string, selector map[string]string, pods, allowed int32) (*policyv1.PodDisruptionBudget, error) {
	minAvailable := intstr.FromInt32(max(pods-allowed, 0))
	pdb, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: selector},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pdb %s/%s: %w", ns, name, err)
	}
	return SetPDBAllowed(ctx, c, pdb.Namespace, pdb.Name, pods, allowed)
}

// SetPDBAllowed writes a budget's status as the disruption controller would.
func SetPDBAllowed(ctx context.Context, c kubernetes.Interface, ns, name string, pods, allowed int32) (*policyv1.PodDisruptionBudget, error) {
	pdb, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get pdb %s/%s: %w", ns, name, err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     pods,
		DesiredHealthy:     max(pods-allowed, 0),
		ExpectedPods:       pods,
	}
	out, err := c.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("pdb %s/%s status: %w", pdb.Namespace, pdb.Name, err)
	}
	return out, nil
}
