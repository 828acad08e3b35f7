// Package kubeenv starts a real Kubernetes control plane — etcd and kube-apiserver, no
// kubelet, no controller-manager, no scheduler — for integration tests and for checking
// manifests with `kubectl apply --dry-run=server`.
//
// The binaries are built by hack/deps.d/30-kube.sh into <repo root>/.cache/k8s/bin; a
// folder named by KUBEBUILDER_ASSETS (holding kube-apiserver and etcd) takes precedence.
// Both processes listen on free loopback ports and keep all state in a temporary folder,
// so several environments can run side by side.
//
// It starts the processes by hand rather than through controller-runtime's envtest: the
// flags are the handful kube-apiserver 1.37 needs on a loopback address (envtest's
// defaults predate --endpoint-reconciler-type=none), and remedy's go.mod stays free of
// controller-runtime and apiextensions-apiserver.
package kubeenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// ErrNoBinaries is returned when kube-apiserver or etcd cannot be found.
var ErrNoBinaries = errors.New("kube-apiserver/etcd not built: run hack/deps.d/30-kube.sh (or make deps), or set KUBEBUILDER_ASSETS")

// Options tune an environment. The zero value is a permissive API server (AlwaysAllow).
type Options struct {
	// BinDir holds kube-apiserver and etcd; empty means BinDir().
	BinDir string
	// Authorization is kube-apiserver's --authorization-mode: "AlwaysAllow" (default) or
	// "RBAC", for tests that check what a ClusterRole really grants. The environment's
	// own user is in system:masters either way.
	Authorization string
	// StartTimeout bounds waiting for /readyz; default 2m (a loaded CI machine is slow).
	StartTimeout time.Duration
	// ExtraAPIServerFlags are appended to kube-apiserver's command line.
	ExtraAPIServerFlags []string
	// Cluster starts a whole cluster (cluster.go): kube-controller-manager,
	// kube-scheduler and kwok as well. Tests that only need the API leave it off.
	Cluster bool
	// Nodes is how many kwok nodes a whole cluster starts with (kwok-node-0, ...);
	// Env.AddNodes adds more.
	Nodes int
}

// Env is a running control plane.
type Env struct {
	// Config authenticates as an admin (system:masters) user.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same user, for kubectl.
	Kubeconfig string
	// URL is the API server's https address.
	URL string
	// Dir holds the processes' state and logs (etcd.log, kube-apiserver.log).
	Dir string

	etcd, apiserver *process
	// extra are the whole cluster's processes (controller-manager, scheduler, kwok).
	extra    []*process
	stopOnce sync.Once
	keepDir  bool
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// BinDir returns where the binaries are looked up: $KUBEBUILDER_ASSETS, else
// <repo root>/.cache/k8s/bin where the repo root is the nearest parent of the working
// directory holding hack/deps.d/30-kube.sh.
func BinDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "k8s", "bin"), nil
}

// RepoRoot finds remedy's checkout from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "deps.d", "30-kube.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repo root: no hack/deps.d/30-kube.sh above the working directory")
		}
		dir = parent
	}
}

// Binaries returns the paths of kube-apiserver and etcd, or an error wrapping
// ErrNoBinaries that says how to build them.
func Binaries(dir string) (apiserver, etcd string, err error) {
	if dir == "" {
		if dir, err = BinDir(); err != nil {
			return "", "", err
		}
	}
	apiserver, etcd = filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")
	for _, p := range []string{apiserver, etcd} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", "", fmt.Errorf("%w (missing %s)", ErrNoBinaries, p)
		}
	}
	return apiserver, etcd, nil
}

// Start starts etcd and kube-apiserver and waits until the API server is ready. The
// caller must call Stop. ctx bounds the start only, not the processes' life.
func Start(ctx context.Context, o Options) (*Env, error) {
	apiBin, etcdBin, err := Binaries(o.BinDir)
	if err != nil {
		return nil, err
	}
	if o.Authorization == "" {
		o.Authorization = "AlwaysAllow"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	dir, err := os.MkdirTemp("", "kubeenv-")
	if err != nil {
		return nil, fmt.Errorf("kubeenv: %w", err)
	}
	e := &Env{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			e.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.etcd, err = startProcess(dir, "etcd", etcdBin,
		"--name=kubeenv",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubeenv="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, e.etcd, etcdURL+"/health", nil); err != nil {
		return nil, err
	}

	token, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"),
		[]byte(token+`,kubeenv-admin,kubeenv-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("kubeenv: %w", err)
	}
	if err := writeServiceAccountKey(dir); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	port := ports[2]
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--service-account-issuer=https://kubeenv.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=" + o.Authorization,
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
	}
	e.apiserver, err = startProcess(dir, "kube-apiserver", apiBin, append(args, o.ExtraAPIServerFlags...)...)
	if err != nil {
		return nil, err
	}
	e.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	// The server writes its self-signed serving certificate before it listens; until
	// then readiness is probed without verification, and the client trusts the
	// certificate from then on.
	if err := waitHTTP(ctx, e.apiserver, e.URL+"/readyz", map[string]string{"Authorization": "Bearer " + token}); err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubeenv: read serving certificate: %w", err)
	}
	e.Config = &rest.Config{
		Host:            e.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		QPS:             200,
		Burst:           400,
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, e.URL, filepath.Join(certDir, "apiserver.crt"), token); err != nil {
		return nil, err
	}
	if o.Cluster {
		if err := e.startCluster(ctx, o); err != nil {
			return nil, err
		}
	}
	ok = true
	return e, nil
}

// Stop terminates kube-apiserver, then etcd, and removes the state folder. It is safe
// to call more than once.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		for _, p := range append(e.extra, e.apiserver, e.etcd) {
			if p != nil {
				p.stop(10 * time.Second)
			}
		}
		if !e.keepDir {
			_ = os.RemoveAll(e.Dir)
		}
	})
}

// Logs returns the last lines of both processes' logs, for a failing test to print.
func (e *Env) Logs(lines int) string {
	var b strings.Builder
	for _, p := range append([]*process{e.etcd, e.apiserver}, e.extra...) {
		if p != nil {
			fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", p.name, lines, tail(p.log, lines))
		}
	}
	return b.String()
}

func startProcess(dir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kubeenv: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, and killed with the test binary if it dies without Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kubeenv: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func waitHTTP(ctx context.Context, p *process, url string, headers map[string]string) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // readiness probe only
	}
	defer client.CloseIdleConnections()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("kubeenv: %w", err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body[:n]))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("kubeenv: %s exited (%v) before it was ready; log %s:\n%s", p.name, p.err, p.log, tail(p.log, 30))
		case <-ctx.Done():
			return fmt.Errorf("kubeenv: %s not ready at %s (%s): %w; log %s:\n%s", p.name, url, last, ctx.Err(), p.log, tail(p.log, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts reserves n distinct loopback ports by listening on :0, then releases them
// for the processes to take.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubeenv: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeServiceAccountKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("kubeenv: service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("kubeenv: service account key: %w", err)
	}
	files := map[string]*pem.Block{
		"sa.key": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		"sa.pub": {Type: "PUBLIC KEY", Bytes: pub},
	}
	for name, block := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return fmt.Errorf("kubeenv: %w", err)
		}
	}
	return nil
}

func writeKubeconfig(path, server, caFile, token string) error {
	const tmpl = `apiVersion: v1
kind: Config
clusters:
- name: kubeenv
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kubeenv-admin
  user:
    token: %s
contexts:
- name: kubeenv
  context:
    cluster: kubeenv
    user: kubeenv-admin
current-context: kubeenv
`
	if err := os.WriteFile(path, fmt.Appendf(nil, tmpl, server, caFile, token), 0o600); err != nil {
		return fmt.Errorf("kubeenv: write kubeconfig: %w", err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("kubeenv: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
