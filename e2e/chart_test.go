//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestChartStopsWithoutTheCredentialsSecret renders the chart with `helm
// template --dry-run=server` against the suite's API server, where the
// chart's lookup sees the cluster as in `helm install`: without the credentials Secret the
// install stops with the command that creates it (never a pod stuck in
// ContainerCreating); once the Secret exists, or with
// credentials.secret.create, it renders.
func TestChartStopsWithoutTheCredentialsSecret(t *testing.T) {
	s := newScenario(t)
	helm := filepath.Join(env.Paths.Bin, "helm")
	ns := "chart-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000"), ".", ""))
	if _, err := env.Kube.CoreV1().Namespaces().Create(s.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	install := func(set ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
		defer cancel()
		// --kube-version: the suite's API server, built from the module
		// proxy, reports no version the chart's kubeVersion accepts.
		args := []string{"template", "vpc-route-publisher", filepath.Join(env.Paths.Root, "deploy", "helm", "vpc-route-publisher"),
			"--namespace", ns, "--kubeconfig", env.CP.AdminKubeconfig, "--dry-run=server", "--kube-version", "1.34.0",
			"--set", "clusterID=" + clusterID, "--set", "clusterCIDR={10.244.0.0/16}"}
		for _, v := range set {
			args = append(args, "--set", v)
		}
		cmd := exec.CommandContext(ctx, helm, args...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	out, err := install()
	want := "the Secret " + ns + "/vpc-route-publisher-credentials with the AccessKey does not exist. Create it first:\n  kubectl -n " + ns + " create secret generic vpc-route-publisher-credentials"
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("install without the Secret: err %v, output:\n%s\nwant it to fail with %q", err, out, want)
	}
	if out, err := install("credentials.secret.create=true", "credentials.secret.accessKeyID=LTAIexample", "credentials.secret.accessKeySecret=example"); err != nil {
		t.Errorf("install creating the Secret: %v\n%s", err, out)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "vpc-route-publisher-credentials", Namespace: ns},
		StringData: map[string]string{"access-key-id": "LTAIexample", "access-key-secret": "example"},
	}
	if _, err := env.Kube.CoreV1().Secrets(ns).Create(s.ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = install()
	if err != nil || !strings.Contains(out, "kind: Deployment") || !strings.Contains(out, "VPC_ROUTE_PUBLISHER_CLUSTER_ID") {
		t.Errorf("install with the Secret: err %v, output:\n%s", err, out)
	}
}
