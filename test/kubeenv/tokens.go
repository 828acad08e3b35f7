package kubeenv

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodToken returns a ServiceAccount token for audience, bound to pod (as the kubelet
// requests it for a projected serviceAccountToken volume), from the API server's
// TokenRequest API; it creates the ServiceAccount unless it exists. With pod empty the
// token is bound to nothing.
func PodToken(ctx context.Context, c kubernetes.Interface, ns, serviceAccount, pod, audience string) (string, error) {
	_, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create serviceaccount %s/%s: %w", ns, serviceAccount, err)
	}
	exp := int64(3600)
	req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp}}
	if pod != "" {
		p, err := c.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("pod %s/%s: %w", ns, pod, err)
		}
		req.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID}
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", ns, serviceAccount, err)
	}
	return tr.Status.Token, nil
}
