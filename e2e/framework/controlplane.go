package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ControlPlane is an etcd and a kube-apiserver on loopback, with RBAC and the
// Node authorizer on, a bootstrap admin identity (client certificate in
// system:masters), service-account token signing and no cloud provider. It is
// what the publisher talks to in the end-to-end tests and the demo.
type ControlPlane struct {
	Dir       string
	PKI       *PKI
	EtcdURL   string
	ServerURL string
	// Admin is the bootstrap admin's client configuration.
	Admin *rest.Config
	// AdminKubeconfig is a kubeconfig file for the admin identity.
	AdminKubeconfig string

	etcd      *Process
	apiserver *Process
}

// ControlPlaneOptions locate the binaries; Dir is a fresh temporary directory
// that receives data, certificates and logs.
type ControlPlaneOptions struct {
	EtcdBin      string
	APIServerBin string
	Dir          string
	// StartTimeout bounds each component's start; 0 means 2 minutes (the
	// API server's bootstrap post-start hooks take a while on a busy machine).
	StartTimeout time.Duration
}

// StartControlPlane starts etcd, then kube-apiserver, and waits until
// /readyz of the API server answers ok. On error, whatever was started is
// stopped again.
func StartControlPlane(ctx context.Context, o ControlPlaneOptions) (cp *ControlPlane, err error) {
	timeout := o.StartTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	cp = &ControlPlane{Dir: o.Dir}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	cp.PKI, err = NewPKI(filepath.Join(o.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	if err := cp.startEtcd(ctx, o.EtcdBin, timeout); err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, o.APIServerBin, timeout); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context, bin string, timeout time.Duration) error {
	clientAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	peerAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	cp.EtcdURL = "http://" + clientAddr
	peerURL := "http://" + peerAddr
	args := []string{
		"--name=e2e",
		"--data-dir=" + filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls=" + cp.EtcdURL,
		"--advertise-client-urls=" + cp.EtcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL,
		"--initial-cluster-state=new",
		// Durability is worthless for a throw-away test store; fsync on a
		// busy CI disk is what makes etcd slow.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
	cp.etcd, err = StartProcess("etcd", filepath.Join(cp.Dir, "logs"), bin, args, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	return waitReady(ctx, cp.etcd, timeout, func(ctx context.Context) error {
		return httpGetOK(ctx, client, cp.EtcdURL+"/health", `"health":"true"`)
	})
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, bin string, timeout time.Duration) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	cp.ServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	p := cp.PKI
	args := []string{
		"--etcd-servers=" + cp.EtcdURL,
		"--storage-backend=etcd3",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(cp.Dir, "apiserver-certs"),
		"--tls-cert-file=" + p.ServingCertFile,
		"--tls-private-key-file=" + p.ServingKeyFile,
		"--client-ca-file=" + p.CAFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPublicKeyFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		// A service range is mandatory; nothing is ever routed to it.
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
	cp.apiserver, err = StartProcess("kube-apiserver", filepath.Join(cp.Dir, "logs"), bin, args, nil)
	if err != nil {
		return err
	}
	cp.Admin = &rest.Config{
		Host: cp.ServerURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.CACert,
			CertData: p.AdminCert,
			KeyData:  p.AdminKey,
		},
		QPS:   100,
		Burst: 200,
	}
	cs, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		return fmt.Errorf("building admin client: %w", err)
	}
	if err := waitReady(ctx, cp.apiserver, timeout, func(ctx context.Context) error {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("/readyz: %w: %s", err, body)
		}
		return nil
	}); err != nil {
		return err
	}
	cp.AdminKubeconfig = filepath.Join(cp.Dir, "admin.kubeconfig")
	return WriteKubeconfig(cp.AdminKubeconfig, cp.ServerURL, p.CACert, &clientcmdapi.AuthInfo{
		ClientCertificateData: p.AdminCert,
		ClientKeyData:         p.AdminKey,
	})
}

// Stop stops the API server, then etcd (SIGTERM, then SIGKILL after a
// deadline). It is safe to call on a partly started control plane.
func (cp *ControlPlane) Stop() error {
	var errs []error
	for _, p := range []*Process{cp.apiserver, cp.etcd} {
		if p != nil {
			errs = append(errs, p.Stop(DefaultStopTimeout))
		}
	}
	return errors.Join(errs...)
}

// Processes returns the running components, for log dumps.
func (cp *ControlPlane) Processes() []*Process {
	var ps []*Process
	for _, p := range []*Process{cp.etcd, cp.apiserver} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// WriteKubeconfig writes a one-context kubeconfig for server and auth.
func WriteKubeconfig(path, server string, caPEM []byte, auth *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["e2e"] = auth
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	cfg.CurrentContext = "e2e"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating kubeconfig directory: %w", err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func httpGetOK(ctx context.Context, client *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
