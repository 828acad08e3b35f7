// Package deploy_test checks what deploy/ ships: every kustomization renders with
// kubectl's Kustomize, the rendered objects reference only Secrets, ConfigMaps,
// ServiceAccounts and flags that exist, a real kube-apiserver (test/kubeenv) accepts them
// with `kubectl apply --dry-run=server`, the alert rules pass promtool's checks and unit
// tests, the Alertmanager example passes amtool, and on a real nats-server the auth
// callout confines each agent's ServiceAccount token to its node.
//
// The tools come from hack/deps.d/60-deploy-tools.sh (and 30-kube.sh for the API server).
// A missing tool skips a test, except under REMEDY_E2E=1, where it fails it.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/remedyhq/remedy/test/kubeenv"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	kenv.Stop()
	os.Exit(code)
}

// The kustomizations a user applies (components are checked through the overlays that
// use them).
var kustomizations = []string{"base", "overlays/embedded", "overlays/ha", "monitoring"}

// nodeA has an EKS-style name: its dots become underscores in subjects and consumer
// names (signal.NodeToken).
const nodeA = "node-a.ec2.internal"

// tool returns the path of a command-line tool: on the PATH or in <repo>/.cache/bin.
// Without it the test is skipped, or fails under REMEDY_E2E=1.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("..", ".cache", "bin", name); isExec(p) {
		abs, _ := filepath.Abs(p)
		return abs
	}
	msg := fmt.Sprintf("%s not found: run hack/deps.d/60-deploy-tools.sh", name)
	if os.Getenv("REMEDY_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

func run(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// tree copies deploy/ into a temporary folder and generates its secrets there with
// gen-secrets.sh, as a user would before applying.
func tree(t *testing.T) string {
	t.Helper()
	tool(t, "openssl")
	dst := copyTree(t)
	cmd := exec.Command("bash", filepath.Join(dst, "gen-secrets.sh"), "--out", dst)
	cmd.Env = append(os.Environ(), "FORCE=1", "REMEDY_AUDIT_DSN=postgres://remedy:secret@postgres:5432/remedy?sslmode=disable")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
	}
	return dst
}

// copyTree copies deploy/ (without its Go files and generated secrets) into a temporary
// folder.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, p)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, ".go") || (strings.Contains(p, "secrets/") && !strings.HasSuffix(p, ".gitignore")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestMissingSecretsNameTheScript: on a checkout without generated secrets, rendering an
// overlay fails with an error that names deploy/gen-secrets.sh, the script that makes them.
func TestMissingSecretsNameTheScript(t *testing.T) {
	kubectl := tool(t, "kubectl")
	root := copyTree(t)
	for _, dir := range []string{"overlays/ha", "overlays/embedded"} {
		out, err := runErr(root, kubectl, "kustomize", dir)
		if err == nil {
			t.Errorf("%s rendered without secrets", dir)
			continue
		}
		if !strings.Contains(string(out), "generated-by-deploy-gen-secrets.sh: no such file") {
			t.Errorf("kubectl kustomize %s without secrets: the error does not name gen-secrets.sh:\n%s", dir, out)
		}
	}
}

type object struct {
	Kind string
	Name string
	NS   string
	Raw  []byte
}

func (o object) String() string { return o.Kind + "/" + o.Name }

// render runs `kubectl kustomize` on dir (relative to root) and splits the objects.
func render(t *testing.T, root, dir string) ([]object, []byte) {
	t.Helper()
	out := run(t, root, tool(t, "kubectl"), "kustomize", dir)
	return split(t, out), out
}

func split(t *testing.T, b []byte) []object {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind == "" {
			continue
		}
		objs = append(objs, object{Kind: meta.Kind, Name: meta.Metadata.Name, NS: meta.Metadata.Namespace, Raw: doc})
	}
	return objs
}

func find(objs []object, kind, name string) (object, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func decode[T any](t *testing.T, objs []object, kind, name string) *T {
	t.Helper()
	o, ok := find(objs, kind, name)
	if !ok {
		t.Fatalf("rendered output has no %s/%s", kind, name)
	}
	v := new(T)
	if err := yaml.UnmarshalStrict(o.Raw, v); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return v
}

// podSpecs returns the pod templates of the workloads.
func podSpecs(t *testing.T, objs []object) map[string]*corev1.PodSpec {
	t.Helper()
	out := map[string]*corev1.PodSpec{}
	for _, o := range objs {
		switch o.Kind {
		case "Deployment":
			out[o.String()] = &decode[appsv1.Deployment](t, objs, o.Kind, o.Name).Spec.Template.Spec
		case "DaemonSet":
			out[o.String()] = &decode[appsv1.DaemonSet](t, objs, o.Kind, o.Name).Spec.Template.Spec
		case "StatefulSet":
			out[o.String()] = &decode[appsv1.StatefulSet](t, objs, o.Kind, o.Name).Spec.Template.Spec
		}
	}
	return out
}

// TestRender renders every kustomization and checks what each must hold.
func TestRender(t *testing.T) {
	root := tree(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs, _ := render(t, root, dir)
			if len(objs) == 0 {
				t.Fatal("no objects")
			}
			for _, o := range objs {
				if o.NS != "" && o.NS != "remedy-system" {
					t.Errorf("%s in namespace %q, want remedy-system", o, o.NS)
				}
			}
			checkStrict(t, objs)
			checkReferences(t, objs)
			checkWorkloads(t, objs)
			if dir == "monitoring" {
				return
			}
			checkAgent(t, objs)
			checkEngine(t, objs)
			checkFlags(t, objs)
		})
	}
}

// checkStrict decodes every built-in object with the API types, strictly: an unknown
// or duplicated field (a typo that kubectl would drop with a warning) fails. The
// Prometheus Operator kinds are checked by promtool instead.
func checkStrict(t *testing.T, objs []object) {
	t.Helper()
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, o := range objs {
		if o.Kind == "PrometheusRule" || o.Kind == "PodMonitor" {
			continue
		}
		if _, _, err := dec.Decode(o.Raw, nil, nil); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
}

// checkReferences: every Secret, ConfigMap, ServiceAccount and PVC a pod names, and every
// ServiceAccount a binding names, is in the same rendered output (kustomize rewrites
// generated names with their hash suffix only where it knows the reference).
func checkReferences(t *testing.T, objs []object) {
	t.Helper()
	need := func(kind, name, from string) {
		if _, ok := find(objs, kind, name); !ok {
			t.Errorf("%s refers to %s/%s, which is not in the output", from, kind, name)
		}
	}
	for w, spec := range podSpecs(t, objs) {
		if spec.ServiceAccountName != "" {
			need("ServiceAccount", spec.ServiceAccountName, w)
		}
		for _, v := range spec.Volumes {
			switch {
			case v.Secret != nil:
				need("Secret", v.Secret.SecretName, w)
			case v.ConfigMap != nil:
				need("ConfigMap", v.ConfigMap.Name, w)
			case v.PersistentVolumeClaim != nil:
				need("PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName, w)
			}
		}
		for _, c := range spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					need("Secret", ref.Name, w)
					if o, ok := find(objs, "Secret", ref.Name); ok {
						var s corev1.Secret
						if err := yaml.Unmarshal(o.Raw, &s); err != nil {
							t.Fatal(err)
						}
						if len(s.Data[ref.Key]) == 0 && s.StringData[ref.Key] == "" {
							t.Errorf("%s: env %s: secret %s has no key %q", w, e.Name, ref.Name, ref.Key)
						}
					}
				}
			}
		}
	}
	for _, o := range objs {
		if o.Kind != "ClusterRoleBinding" && o.Kind != "RoleBinding" {
			continue
		}
		var b rbacv1.RoleBinding // same subjects shape as ClusterRoleBinding
		if err := yaml.Unmarshal(o.Raw, &b); err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" {
				need("ServiceAccount", s.Name, o.String())
			}
		}
		need(b.RoleRef.Kind, b.RoleRef.Name, o.String())
	}
}

// checkWorkloads: requests on every container, no CPU limit (throttling would stall the
// very paths remedy protects), a read-only root and no privilege escalation.
func checkWorkloads(t *testing.T, objs []object) {
	t.Helper()
	for w, spec := range podSpecs(t, objs) {
		for _, c := range spec.Containers {
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
				t.Errorf("%s/%s: no cpu and memory requests", w, c.Name)
			}
			if _, ok := r.Limits[corev1.ResourceCPU]; ok {
				t.Errorf("%s/%s: has a CPU limit", w, c.Name)
			}
			if r.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: no memory limit", w, c.Name)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s/%s: want readOnlyRootFilesystem and allowPrivilegeEscalation false", w, c.Name)
			}
			if sc != nil && sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s/%s: privileged", w, c.Name)
			}
		}
	}
}

func checkAgent(t *testing.T, objs []object) {
	t.Helper()
	ds := decode[appsv1.DaemonSet](t, objs, "DaemonSet", "remedy-agent")
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("agent: hostNetwork %v hostPID %v hostIPC %v, want only hostNetwork", spec.HostNetwork, spec.HostPID, spec.HostIPC)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("agent: no toleration for every taint: %+v", spec.Tolerations)
	}
	c := spec.Containers[0]
	caps := c.SecurityContext.Capabilities
	if caps == nil || !slices.Equal(caps.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(caps.Add, []corev1.Capability{"NET_ADMIN"}) {
		t.Errorf("agent: capabilities %+v, want drop ALL, add NET_ADMIN", caps)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Error("agent: NODE_NAME does not come from spec.nodeName")
	}
	// Host paths: /proc and /sys read-only; writable only where actions write.
	hostPath := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPath[v.Name] = v.HostPath.Path
		}
	}
	writable := []string{"/proc/irq", "/proc/sys/net", "/sys/devices", "/var/lib/remedy-agent"}
	for _, m := range c.VolumeMounts {
		p, ok := hostPath[m.Name]
		if !ok {
			continue
		}
		switch {
		case (p == "/proc" || p == "/sys") && !m.ReadOnly:
			t.Errorf("agent: host %s mounted read-write", p)
		case !m.ReadOnly && !slices.Contains(writable, p):
			t.Errorf("agent: host %s mounted read-write; only %v may be", p, writable)
		}
		if strings.HasPrefix(p, "/proc") || strings.HasPrefix(p, "/sys") || strings.HasPrefix(p, "/run") {
			if want := "/host" + p; m.MountPath != want {
				t.Errorf("agent: host %s at %s, want %s (--host-root=/host)", p, m.MountPath, want)
			}
		}
	}
	if !slices.Contains(c.Args, "--host-root=/host") {
		t.Errorf("agent args %v lack --host-root=/host", c.Args)
	}
}

func checkEngine(t *testing.T, objs []object) {
	t.Helper()
	d := decode[appsv1.Deployment](t, objs, "Deployment", "remedy-engine")
	c := d.Spec.Template.Spec.Containers[0]
	for probe, want := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if want == nil || want.HTTPGet == nil || want.HTTPGet.Path != probe {
			t.Errorf("engine: probe on %s missing", probe)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil
	}) {
		t.Error("engine: no POD_NAME (leader election identity)")
	}
	replicas := *d.Spec.Replicas
	_, hasPDB := find(objs, "PodDisruptionBudget", "remedy-engine")
	_, hasPVC := find(objs, "PersistentVolumeClaim", "remedy-data")
	svc := decode[corev1.Service](t, objs, "Service", "remedy")
	natsPort := slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 4222 })
	_, hasNATS := find(objs, "StatefulSet", "remedy-nats")
	switch {
	case hasPVC: // embedded
		if replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("embedded engine: %d replicas, strategy %s; want 1, Recreate", replicas, d.Spec.Strategy.Type)
		}
		if hasPDB {
			t.Error("embedded engine: a PDB on one replica blocks every drain")
		}
		if !natsPort || hasNATS {
			t.Errorf("embedded: the Service must carry the in-process NATS (port 4222: %v) and no NATS cluster (%v)", natsPort, hasNATS)
		}
		if !slices.Contains(c.Args, "--dry-run") {
			t.Errorf("embedded engine args %v: a first install starts in dry run", c.Args)
		}
		if !slices.Contains(c.Args, "--nats-listen=0.0.0.0:4222") {
			t.Errorf("embedded engine args %v: the in-process NATS must listen beyond loopback", c.Args)
		}
	default:
		if replicas != 2 || !hasPDB {
			t.Errorf("engine: %d replicas, PDB %v; want 2 and a PDB", replicas, hasPDB)
		}
		pdb := decode[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "remedy-engine")
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
			t.Errorf("engine PDB: minAvailable %v, want 1", pdb.Spec.MinAvailable)
		}
	}
	if hasNATS {
		ss := decode[appsv1.StatefulSet](t, objs, "StatefulSet", "remedy-nats")
		if *ss.Spec.Replicas != 3 {
			t.Errorf("NATS: %d replicas, want 3", *ss.Spec.Replicas)
		}
		var routes []string
		for _, a := range ss.Spec.Template.Spec.Containers[0].Args {
			if r, ok := strings.CutPrefix(a, "--routes="); ok {
				routes = strings.Split(r, ",")
			}
		}
		for i := range 3 {
			want := fmt.Sprintf("nats://route:$(NATS_ROUTE_PASSWORD)@remedy-nats-%d.%s:6222", i, ss.Spec.ServiceName)
			if !slices.Contains(routes, want) {
				t.Errorf("NATS routes %v lack %s", routes, want)
			}
		}
		if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--audit-dsn=") }) {
			t.Errorf("ha engine args %v: no --audit-dsn (two replicas need a shared audit log)", c.Args)
		}
		if want := fmt.Sprintf("--nats-replicas=%d", *ss.Spec.Replicas); !slices.Contains(c.Args, want) {
			t.Errorf("ha engine args %v lack %s: streams on one server of the cluster die with it", c.Args, want)
		}
	}
}

// checkFlags: every --flag in the engine's and the agent's args is one the command
// defines (read from cmd/*/ with go/parser), so a renamed flag fails here and not in a
// CrashLoopBackOff.
func checkFlags(t *testing.T, objs []object) {
	t.Helper()
	engine := decode[appsv1.Deployment](t, objs, "Deployment", "remedy-engine").Spec.Template.Spec.Containers[0]
	agent := decode[appsv1.DaemonSet](t, objs, "DaemonSet", "remedy-agent").Spec.Template.Spec.Containers[0]
	for _, c := range []struct {
		name, dir string
		args      []string
	}{{"remedy", "../cmd/remedy", engine.Args}, {"remedy-agent", "../cmd/remedy-agent", agent.Args}} {
		if len(c.args) == 0 {
			t.Fatalf("%s: no args", c.name)
		}
		defined := flagNames(t, c.dir)
		for _, a := range c.args[1:] {
			if !strings.HasPrefix(a, "--") {
				t.Errorf("%s %s: argument %q is not a --flag=value", c.name, c.args[0], a)
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !defined[name] {
				t.Errorf("%s %s: --%s is not a flag of %s", c.name, c.args[0], name, c.dir)
			}
		}
	}
}

// flagNames collects the names of the flags a command defines: the first argument of
// fs.String, fs.StringVar's second, and so on, for every FlagSet method.
func flagNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range pkgs {
		ast.Inspect(p, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			m := sel.Sel.Name
			idx := 0
			if strings.HasSuffix(m, "Var") || strings.HasSuffix(m, "VarP") || m == "Alias" { // cli.Alias(fs, old, new)
				idx = 1
			}
			switch strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "P"), "Var"), "Var") {
			case "String", "StringSlice", "Bool", "Int", "Int64", "Uint", "Uint64", "Float64", "Duration", "Func", "BoolFunc", "Text", "Alias":
			default:
				return true
			}
			if len(call.Args) > idx {
				if lit, ok := call.Args[idx].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						names[s] = true
					}
				}
			}
			return true
		})
	}
	if len(names) == 0 {
		t.Fatalf("no flags found in %s", dir)
	}
	return names
}

// TestServerDryRun applies every rendered kustomization to a real kube-apiserver with
// `kubectl apply --dry-run=server`: admission, defaulting and validation of the real
// API, not a schema copy. The Prometheus Operator kinds (PrometheusRule, PodMonitor)
// have no CRD on the test server; their content is checked by promtool
// (TestPrometheusRules) instead.
func TestServerDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	kubectl := tool(t, "kubectl")
	root := tree(t)
	env := kenv.Get(t)
	kc := "--kubeconfig=" + env.Kubeconfig
	// Namespaced objects are dry-run into a namespace that must exist for real.
	run(t, root, kubectl, kc, "create", "namespace", "remedy-system", "--save-config")

	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs, _ := render(t, root, dir)
			var keep [][]byte
			for _, o := range objs {
				if o.Kind == "PrometheusRule" || o.Kind == "PodMonitor" {
					continue
				}
				keep = append(keep, o.Raw)
			}
			f := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(f, bytes.Join(keep, []byte("\n---\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(kubectl, kc, "apply", "--dry-run=server", "-o", "name", "-f", f)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server: %v\n%s%s", err, out, stderr.Bytes())
			}
			// The API server's warnings (deprecated fields, Pod Security) count as failures.
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.Contains(l, "Warning") {
					t.Errorf("server warning: %s", l)
				}
			}
			got := strings.Fields(string(out))
			if len(got) != len(keep) {
				t.Errorf("server accepted %d objects, want %d:\n%s", len(got), len(keep), out)
			}
		})
	}

	// The check is real: the same server rejects a broken manifest.
	t.Run("rejects", func(t *testing.T) {
		objs, _ := render(t, root, "overlays/embedded")
		o, _ := find(objs, "DaemonSet", "remedy-agent")
		bad := bytes.Replace(o.Raw, []byte("operator: Exists"), []byte("operator: Sometimes"), 1)
		f := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(f, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runErr(root, kubectl, kc, "apply", "--dry-run=server", "-f", f)
		if err == nil || !strings.Contains(string(out), "Unsupported value") {
			t.Fatalf("server accepted an invalid toleration operator (err %v):\n%s", err, out)
		}
	})
}

// TestReadmeCurrent: deploy/README.md names only flags the binaries define, and does not
// call leader election or stream replicas unwired (both are: engine/app, TestRender).
func TestReadmeCurrent(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, stale := range []string{"Not wired in the engine yet", "should create them with three replicas"} {
		if strings.Contains(text, stale) {
			t.Errorf("deploy/README.md still says %q", stale)
		}
	}
	defined := flagNames(t, "../cmd/remedy")
	for name := range flagNames(t, "../cmd/remedy-agent") {
		defined[name] = true
	}
	for _, f := range regexp.MustCompile("`--([a-z][a-z0-9-]*)").FindAllStringSubmatch(text, -1) {
		if !defined[f[1]] && f[1] != "flag" {
			t.Errorf("deploy/README.md names --%s, which neither remedy nor remedy-agent defines", f[1])
		}
	}
}
