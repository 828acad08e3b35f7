package natsauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAudience is the audience of the agents' projected tokens: a token minted for
// the Kubernetes API (or any other audience) is refused.
const DefaultAudience = "remedy-nats"

// KubeReviewer checks a ServiceAccount token with the Kubernetes TokenReview API: it
// must be valid for Audience, belong to Namespace/ServiceAccount and be bound to a pod
// that still exists (same uid) and is scheduled on a node; that node is the identity.
// The engine needs create on tokenreviews and get on pods in Namespace.
type KubeReviewer struct {
	Client         kubernetes.Interface
	Namespace      string
	ServiceAccount string
	// Audience the token must carry (default DefaultAudience).
	Audience string
}

// The TokenReview extra keys of a token bound to a pod.
const (
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraPodUID   = "authentication.kubernetes.io/pod-uid"
	extraNodeName = "authentication.kubernetes.io/node-name"
)

// Review implements Reviewer.
func (k KubeReviewer) Review(ctx context.Context, token string) (Identity, error) {
	aud := k.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	tr, err := k.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		return Identity{}, fmt.Errorf("token not authenticated: %s", orNone(st.Error))
	}
	if !slices.Contains(st.Audiences, aud) {
		return Identity{}, fmt.Errorf("token is not for audience %q (it is for %v)", aud, st.Audiences)
	}
	want := "system:serviceaccount:" + k.Namespace + ":" + k.ServiceAccount
	if st.User.Username != want {
		return Identity{}, fmt.Errorf("token of %s, want %s", st.User.Username, want)
	}
	podName, podUID := one(st.User.Extra[extraPodName]), one(st.User.Extra[extraPodUID])
	if podName == "" || podUID == "" {
		return Identity{}, errors.New("token is not bound to a pod (use a projected ServiceAccount token)")
	}
	pod, err := k.Client.CoreV1().Pods(k.Namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("pod %s/%s of the token: %w", k.Namespace, podName, err)
	}
	if string(pod.UID) != podUID {
		return Identity{}, fmt.Errorf("pod %s/%s of the token is gone (uid %s, now %s)", k.Namespace, podName, podUID, pod.UID)
	}
	node := pod.Spec.NodeName
	if node == "" {
		return Identity{}, fmt.Errorf("pod %s/%s of the token is not on a node", k.Namespace, podName)
	}
	if n := one(st.User.Extra[extraNodeName]); n != "" && n != node {
		return Identity{}, fmt.Errorf("token names node %s, its pod is on %s", n, node)
	}
	return Identity{Namespace: k.Namespace, ServiceAccount: k.ServiceAccount, Pod: podName, Node: node, Expires: expiry(token)}, nil
}

func one(v authnv1.ExtraValue) string {
	if len(v) == 1 {
		return v[0]
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// expiry reads the exp claim of a token the API server has just verified (zero when it
// has none).
func expiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}
