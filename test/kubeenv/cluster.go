package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The whole-cluster mode (Options.Cluster): besides etcd and kube-apiserver, the
// environment runs kube-controller-manager (ReplicaSets, the disruption controller that
// fills a PDB's status, the node lifecycle), kube-scheduler and kwok, which plays the
// kubelet of every node annotated KwokAnnotation: the node turns Ready and keeps its
// Lease, a pod bound to it turns Running and Ready, a deleted pod goes away. No
// container runs. hack/deps.d/35-kube-cluster.sh builds the three binaries.

// ErrNoClusterBinaries is returned when the whole-cluster mode's binaries are missing; it
// wraps ErrNoBinaries, so -short skips a test that needs them.
var ErrNoClusterBinaries = fmt.Errorf("%w: kube-scheduler/kube-controller-manager/kwok not built: run hack/deps.d/35-kube-cluster.sh (or make deps)", ErrNoBinaries)

// Kwok's node selector and the taint that keeps pods off fake nodes unless they
// tolerate it (KwokToleration).
const (
	KwokAnnotation = "kwok.x-k8s.io/node"
	KwokTaintKey   = "kwok.x-k8s.io/node"
)

// KwokToleration lets a pod run on a kwok node.
var KwokToleration = corev1.Toleration{Key: KwokTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

// clusterBinaries are the whole-cluster mode's binaries and kwok's stages.
func clusterBinaries(dir string) (scheduler, controllerManager, kwok, stages string, err error) {
	if dir == "" {
		if dir, err = BinDir(); err != nil {
			return "", "", "", "", err
		}
	}
	scheduler, controllerManager, kwok = filepath.Join(dir, "kube-scheduler"), filepath.Join(dir, "kube-controller-manager"), filepath.Join(dir, "kwok")
	for _, p := range []string{scheduler, controllerManager, kwok} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", "", "", "", fmt.Errorf("%w (missing %s)", ErrNoClusterBinaries, p)
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", "", "", err
	}
	stages = filepath.Join(root, "test", "tools", "kwok", "stages.yaml")
	if _, err := os.Stat(stages); err != nil {
		return "", "", "", "", fmt.Errorf("kubeenv: kwok stages: %w", err)
	}
	return scheduler, controllerManager, kwok, stages, nil
}

// startCluster starts controller-manager, scheduler and kwok against the running API
// server, waits for the controller-manager to act (the default ServiceAccount) and
// creates o.Nodes kwok nodes, Ready.
func (e *Env) startCluster(ctx context.Context, o Options) error {
	sched, cm, kwok, stages, err := clusterBinaries(o.BinDir)
	if err != nil {
		return err
	}
	kc := e.Kubeconfig
	auth := []string{"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false"}
	p, err := startProcess(e.Dir, "kube-controller-manager", cm, append(auth,
		"--controllers=*,-nodeipam,-serviceaccount-token",
		"--service-account-private-key-file="+filepath.Join(e.Dir, "sa.key"),
		"--root-ca-file="+filepath.Join(e.Dir, "certs", "apiserver.crt"),
		// The disruption controller and the ReplicaSets react at once; the node
		// lifecycle controller gives a node 40s without a heartbeat (its default).
		"--concurrent-replicaset-syncs=10",
	)...)
	if err != nil {
		return err
	}
	e.extra = append(e.extra, p)
	if p, err = startProcess(e.Dir, "kube-scheduler", sched, auth...); err != nil {
		return err
	}
	e.extra = append(e.extra, p)
	if p, err = startProcess(e.Dir, "kwok", kwok,
		"--kubeconfig="+kc, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector="+KwokAnnotation+"=fake",
		"--cidr=10.0.0.1/24", "--node-ip=10.0.0.1",
	); err != nil {
		return err
	}
	e.extra = append(e.extra, p)
	c, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("kubeenv: client: %w", err)
	}
	if err := e.waitFor(ctx, "kube-controller-manager (the default ServiceAccount)", func() (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return err
	}
	if o.Nodes > 0 {
		if _, err := e.AddNodes(ctx, "kwok-node-", o.Nodes, nil); err != nil {
			return err
		}
	}
	return nil
}

// NodeCapacity is what every kwok node offers.
var NodeCapacity = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("16"),
	corev1.ResourceMemory: resource.MustParse("64Gi"),
	corev1.ResourcePods:   resource.MustParse("110"),
}

// AddNodes creates n kwok nodes named prefix0..prefix(n-1), concurrently (32 at a time),
// with the given labels, and waits until kwok reports them all Ready. Whole-cluster
// mode only.
func (e *Env) AddNodes(ctx context.Context, prefix string, n int, labels map[string]string) ([]string, error) {
	if len(e.extra) == 0 {
		return nil, errors.New("kubeenv: AddNodes needs the whole-cluster mode (Options.Cluster)")
	}
	c, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, fmt.Errorf("kubeenv: client: %w", err)
	}
	names := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			node := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: names[i], Labels: map[string]string{"type": "kwok", corev1.LabelHostname: names[i]},
					Annotations: map[string]string{KwokAnnotation: "fake"}},
				Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: KwokTaintKey, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
				Status: corev1.NodeStatus{Capacity: NodeCapacity, Allocatable: NodeCapacity,
					NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "fake", OperatingSystem: "linux", Architecture: "amd64"}},
			}
			for k, v := range labels {
				node.Labels[k] = v
			}
			if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
				errs[i] = fmt.Errorf("create node %s: %w", names[i], err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	return names, e.waitFor(ctx, fmt.Sprintf("%d kwok nodes Ready", n), func() (bool, error) {
		list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range list.Items {
			if want[list.Items[i].Name] && NodeReady(&list.Items[i]) {
				ready++
			}
		}
		return ready == n, nil
	})
}

// NodeReady reports whether a node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond every 100ms until it holds, ctx ends or one of the cluster's
// processes exits.
func (e *Env) waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		for _, p := range e.extra {
			select {
			case <-p.done:
				return fmt.Errorf("kubeenv: %s exited (%v) while waiting for %s; log %s:\n%s", p.name, p.err, what, p.log, tail(p.log, 30))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubeenv: waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Deployment is a Deployment of pods that run on kwok nodes (they tolerate its taint).
func Deployment(ns, name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       KwokPodSpec(),
			},
		},
	}
}

// KwokPodSpec is a pod spec kwok will "run": one container, tolerating kwok nodes.
func KwokPodSpec() corev1.PodSpec {
	zero := int64(0)
	return corev1.PodSpec{
		Containers:                    []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
		Tolerations:                   []corev1.Toleration{KwokToleration},
		TerminationGracePeriodSeconds: &zero,
	}
}

// WaitAvailable waits until a Deployment has all its replicas available.
func (e *Env) WaitAvailable(ctx context.Context, c kubernetes.Interface, ns, name string) error {
	return e.waitFor(ctx, "deployment "+ns+"/"+name+" available", func() (bool, error) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Spec.Replicas != nil && d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.UpdatedReplicas == *d.Spec.Replicas, nil
	})
}

// WaitFor polls cond every 100ms until it holds, ctx ends or a cluster process exits.
func (e *Env) WaitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	return e.waitFor(ctx, what, cond)
}
