package deploy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/signed"
)

// The chart (deploy/chart/remedy) is tested like the overlays: helm lint, helm template of
// every values file in ci/ (the documented ones) applied with kubectl apply --dry-run=server
// to a real kube-apiserver, and its objects compared with what the overlays render, so the
// two ways to install cannot drift. helm comes from hack/deps.d/70-helm.sh.

const chart = "chart/remedy"

// chartValues pairs each documented values file with the kustomizations it must equal.
var chartValues = []struct {
	file  string
	equal []string
}{
	{"ci/embedded-values.yaml", []string{"overlays/embedded"}},
	{"ci/ha-values.yaml", []string{"overlays/ha"}},
	{"ci/monitoring-values.yaml", []string{"overlays/embedded", "monitoring"}},
}

// helmTemplate renders the chart with a values file as release "remedy" in remedy-system.
func helmTemplate(t *testing.T, values string, set ...string) []byte {
	t.Helper()
	return helmTemplateIn(t, "remedy-system", values, set...)
}

func helmTemplateIn(t *testing.T, ns, values string, set ...string) []byte {
	t.Helper()
	args := []string{"template", "remedy", chart, "--namespace", ns, "-f", filepath.Join(chart, values)}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return run(t, ".", tool(t, "helm"), args...)
}

func TestChartLint(t *testing.T) {
	helm := tool(t, "helm")
	for _, v := range chartValues {
		out, err := runErr(".", helm, "lint", "--strict", chart, "-f", filepath.Join(chart, v.file))
		if err != nil {
			t.Errorf("helm lint -f %s: %v\n%s", v.file, err, out)
		}
	}
	// The schema is enforced: a wrong mode fails before any template runs.
	out, err := runErr(".", helm, "template", "remedy", chart, "--set", "mode=cluster")
	if err == nil || !strings.Contains(string(out), "mode") {
		t.Errorf("helm template --set mode=cluster: err %v\n%s", err, out)
	}
}

// TestChartMatchesOverlays: for each documented values file, the chart renders the objects
// the matching kustomizations render: the same kinds and names, the same specs. Allowed to
// differ: the Namespace (helm install --create-namespace makes it), Secret and ConfigMap
// name hashes (kustomize's), Secret values (random either way), and the
// generated-by key gen-secrets.sh adds.
func TestChartMatchesOverlays(t *testing.T) {
	tool(t, "helm")
	root := tree(t)
	for _, v := range chartValues {
		t.Run(filepath.Base(v.file), func(t *testing.T) {
			var want []object
			for _, dir := range v.equal {
				objs, _ := render(t, root, dir)
				want = append(want, objs...)
			}
			got := split(t, helmTemplate(t, v.file))
			w, g := normalize(t, want), normalize(t, got)
			for k, wo := range w {
				gobj, ok := g[k]
				if !ok {
					t.Errorf("%s: in %v, not in the chart", k, v.equal)
					continue
				}
				if !reflect.DeepEqual(wo, gobj) {
					wb, _ := yaml.Marshal(wo)
					gb, _ := yaml.Marshal(gobj)
					t.Errorf("%s differs:\n--- %v\n%s\n--- chart\n%s", k, v.equal, wb, gb)
				}
			}
			for k := range g {
				if _, ok := w[k]; !ok {
					t.Errorf("%s: in the chart, not in %v", k, v.equal)
				}
			}
		})
	}
}

// hashSuffix is kustomize's name hash of generated Secrets and ConfigMaps.
var hashSuffix = regexp.MustCompile(`^(remedy-[a-z-]+)-[a-z0-9]{10}$`)

// normalize maps kind/name to the object as compared (see TestChartMatchesOverlays).
func normalize(t *testing.T, objs []object) map[string]map[string]any {
	t.Helper()
	rename := map[string]string{}
	for _, o := range objs {
		if m := hashSuffix.FindStringSubmatch(o.Name); m != nil && (o.Kind == "Secret" || o.Kind == "ConfigMap") {
			rename[o.Name] = m[1]
		}
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		if o.Kind == "Namespace" {
			continue
		}
		raw := string(o.Raw)
		for from, to := range rename {
			raw = strings.ReplaceAll(raw, from, to)
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		meta := m["metadata"].(map[string]any)
		delete(meta, "namespace")
		if o.Kind == "Secret" {
			var keys []string
			for k := range m["data"].(map[string]any) {
				if k != "generated-by" {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			m["data"] = keys
		}
		out[o.Kind+"/"+meta["name"].(string)] = m
	}
	return out
}

// TestChartServerDryRun applies every documented values file's objects to a real
// kube-apiserver with kubectl apply --dry-run=server, as TestServerDryRun does for the
// overlays (the Prometheus Operator kinds have no CRD there).
func TestChartServerDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	kubectl := tool(t, "kubectl")
	tool(t, "helm")
	env := kenv.Get(t)
	kc := "--kubeconfig=" + env.Kubeconfig
	// Its own namespace on the shared server (TestServerDryRun makes remedy-system).
	const ns = "remedy-chart"
	if out, err := runErr(".", kubectl, kc, "create", "namespace", ns); err != nil && !strings.Contains(string(out), "AlreadyExists") {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}
	for _, v := range chartValues {
		t.Run(filepath.Base(v.file), func(t *testing.T) {
			var keep [][]byte
			for _, o := range split(t, helmTemplateIn(t, ns, v.file)) {
				if o.Kind != "PrometheusRule" && o.Kind != "PodMonitor" {
					keep = append(keep, o.Raw)
				}
			}
			f := filepath.Join(t.TempDir(), "chart.yaml")
			if err := os.WriteFile(f, bytes.Join(keep, []byte("\n---\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(kubectl, kc, "apply", "--dry-run=server", "-n", ns, "-o", "name", "-f", f)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server: %v\n%s%s", err, out, stderr.Bytes())
			}
			if strings.Contains(stderr.String(), "Warning") {
				t.Errorf("server warnings:\n%s", stderr.String())
			}
			if got := strings.Fields(string(out)); len(got) != len(keep) {
				t.Errorf("server accepted %d objects, want %d:\n%s", len(got), len(keep), out)
			}
		})
	}

	// helm install itself, simulated on the server: the release installs, and a Secret
	// already in the namespace is kept as it is (the chart looks it up), so an upgrade
	// does not rotate the tokens and keys.
	t.Run("install", func(t *testing.T) {
		helm := tool(t, "helm")
		token := "kept-webhook-token"
		// As a previous release left it: owned by the release, so helm takes it over.
		owned := filepath.Join(t.TempDir(), "secret.yaml")
		if err := os.WriteFile(owned, []byte(`apiVersion: v1
kind: Secret
metadata:
  name: remedy-webhook
  namespace: `+ns+`
  labels: {app.kubernetes.io/managed-by: Helm}
  annotations: {meta.helm.sh/release-name: remedy, meta.helm.sh/release-namespace: `+ns+`}
stringData: {token: `+token+`}
`), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, ".", kubectl, kc, "apply", "-f", owned)
		out := run(t, ".", helm, "install", "remedy", chart, "--namespace", ns, "--kubeconfig", env.Kubeconfig,
			"--dry-run=server", "--hide-notes")
		_, manifest, ok := bytes.Cut(out, []byte("MANIFEST:"))
		if !ok {
			t.Fatalf("helm install --dry-run=server printed no manifest:\n%s", out)
		}
		var s struct{ Data map[string]string }
		o, ok := find(split(t, manifest), "Secret", "remedy-webhook")
		if !ok || yaml.Unmarshal(o.Raw, &s) != nil {
			t.Fatalf("no Secret remedy-webhook in the manifest:\n%s", manifest)
		}
		if got, _ := base64.StdEncoding.DecodeString(s.Data["token"]); string(got) != token {
			t.Errorf("install replaced the existing webhook token with %q", got)
		}
	})
}

// TestChartSecrets: the secrets the chart makes work (the generated key pair signs and
// verifies an action through executors/signed, as the engine and the agents use it), an
// existing Secret replaces the made one everywhere, and what cannot be made fails with a
// message that says what to set and names deploy/gen-secrets.sh.
func TestChartSecrets(t *testing.T) {
	tool(t, "helm")
	objs := split(t, helmTemplate(t, "ci/embedded-values.yaml"))
	data := func(name, key string) []byte {
		t.Helper()
		o, ok := find(objs, "Secret", name)
		if !ok {
			t.Fatalf("no Secret %s", name)
		}
		var s struct{ Data map[string]string }
		if err := yaml.Unmarshal(o.Raw, &s); err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(s.Data[key])
		if err != nil || len(b) == 0 {
			t.Fatalf("Secret %s key %s: %v %q", name, key, err, s.Data[key])
		}
		return b
	}
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "dispatch.key"), filepath.Join(dir, "dispatch.pub")
	if err := os.WriteFile(keyFile, data("remedy-dispatch-key", "dispatch.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, data("remedy-dispatch-pub", "dispatch.pub"), 0o600); err != nil {
		t.Fatal(err)
	}
	sk, err := signed.LoadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := signed.LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := signed.Seal(executors.Request{ID: "a1", Action: "sysctl.set", Node: "n", Params: json.RawMessage(`{}`)}, sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signed.Open(sealed, pk); err != nil {
		t.Errorf("the chart's key pair does not verify: %v", err)
	}
	if tok := data("remedy-webhook", "token"); len(tok) < 32 {
		t.Errorf("webhook token %q is short", tok)
	}

	// Existing Secrets: none is made, and the pods mount the given ones.
	objs = split(t, helmTemplate(t, "ci/ha-values.yaml", "secrets.webhook.existingSecret=my-webhook",
		"secrets.auditDsn.existingSecret=my-dsn", "audit.dsn=",
		"secrets.natsCallout.existingSecret=my-callout", "nats.callout.seed="))
	for name, value := range map[string]string{"remedy-webhook": "webhook", "remedy-audit-dsn": "auditDsn", "remedy-nats-callout": "natsCallout"} {
		if _, ok := find(objs, "Secret", name); ok {
			t.Errorf("the chart made %s beside secrets.%s.existingSecret", name, value)
		}
	}
	dep, _ := find(objs, "Deployment", "remedy-engine")
	for _, want := range []string{"secretName: my-webhook", "name: my-dsn", "secretName: my-callout"} {
		if !bytes.Contains(dep.Raw, []byte(want)) {
			t.Errorf("engine Deployment lacks %q", want)
		}
	}

	// What the chart cannot make: Helm cannot make an nkey or derive its public key, so
	// the callout's pair comes from values (ci/ha-values.yaml's throwaway one here).
	helm := tool(t, "helm")
	const (
		issuer = "nats.callout.issuer=ABWYXCX2SFNEXXH36IL5BA474C45W2LCP6VD6NBE46SQ7EAGUWXECFU6"
		seed   = "nats.callout.seed=SAAFIIMZIYKZBU4SHO5IEQPAQGFIUTBTMTXUALJ5OKL77IXDUMGN6WIC6U"
	)
	for _, tc := range []struct {
		set, want string
		script    bool // the message names deploy/gen-secrets.sh
	}{
		{"mode=ha", "set nats.callout.issuer", true},
		{"mode=ha," + issuer, "set nats.callout.seed", true},
		{"mode=ha," + issuer + "," + seed, "set audit.dsn", true},
		{"secrets.dispatchKey.existingSecret=k", "go together", false},
		// A user's key where the account's belongs (U… is a user public key).
		{"mode=ha,nats.callout.issuer=UBWYXCX2SFNEXXH36IL5BA474C45W2LCP6VD6NBE46SQ7EAGUWXECFU6", "does not match pattern", false},
		// The per-node users are gone: the old value is refused, not ignored.
		{"mode=ha,nats.nodes={n1}", "'nodes' not allowed", false},
	} {
		out, err := runErr(".", helm, "template", "remedy", chart, "--set", tc.set)
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("--set %s: err %v, want %q:\n%s", tc.set, err, tc.want, out)
		}
		if tc.script && !strings.Contains(string(out), "deploy/gen-secrets.sh") {
			t.Errorf("--set %s: the error does not name deploy/gen-secrets.sh:\n%s", tc.set, out)
		}
	}
}
