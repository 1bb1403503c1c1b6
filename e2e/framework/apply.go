package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// FieldManager is the server-side-apply field manager of the harness.
const FieldManager = "vpc-route-publisher-e2e"

// DecodeManifests splits a multi-document YAML (or JSON) stream into objects,
// skipping empty documents.
func DecodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding manifest %d: %w", len(objs)+1, err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// ReadManifests reads every *.yaml file of the given paths (files or
// directories, not recursive) in name order.
func ReadManifests(paths ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, path := range paths {
		files := []string{path}
		if st, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		} else if st.IsDir() {
			files, err = filepath.Glob(filepath.Join(path, "*.yaml"))
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", path, err)
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, err)
			}
			o, err := DecodeManifests(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			objs = append(objs, o...)
		}
	}
	return objs, nil
}

// KustomizeBuild renders a kustomization with the pinned kustomize binary.
func KustomizeBuild(ctx context.Context, kustomizeBin, dir string) ([]*unstructured.Unstructured, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kustomizeBin, "build", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w: %s", dir, err, stderr.String())
	}
	return DecodeManifests(stdout.Bytes())
}

// Filter keeps the objects whose kind is one of kinds.
func Filter(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	want := make(map[string]bool, len(kinds))
	for _, k := range kinds {
		want[k] = true
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if want[o.GetKind()] {
			out = append(out, o)
		}
	}
	return out
}

// RBACKinds are the kinds that make up the publisher's identity and rights.
var RBACKinds = []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// Applier applies objects with server-side apply, mapping kinds to resources
// through discovery.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier builds an Applier for cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Apply server-side-applies every object, in order. A kind unknown to
// discovery (a CRD applied a moment ago) resets the discovery cache once.
func (a *Applier) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			a.mapper.Reset()
			m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return fmt.Errorf("mapping %s %s: %w", gvk, o.GetName(), err)
			}
		}
		var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ns := o.GetNamespace()
			if ns == "" {
				ns = metav1.NamespaceDefault
			}
			ri = a.dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// InstallCRDs applies the CRDs and waits until each is Established.
func (a *Applier) InstallCRDs(ctx context.Context, crds ...*unstructured.Unstructured) error {
	if err := a.Apply(ctx, crds...); err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crds {
		err := Poll(ctx, 100*time.Millisecond, 30*time.Second, func(ctx context.Context) (bool, error) {
			got, err := a.dyn.Resource(gvr).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				cm, _ := c.(map[string]any)
				if cm["type"] == "Established" && cm["status"] == "True" {
					return true, nil
				}
			}
			return false, fmt.Errorf("CRD %s not yet established", crd.GetName())
		})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s: %w", crd.GetName(), err)
		}
	}
	a.mapper.Reset()
	return nil
}

// ServiceAccountKubeconfig mints a token for the ServiceAccount with the
// TokenRequest API and writes a kubeconfig that authenticates with it, so
// that a process using the kubeconfig has exactly the rights RBAC grants the
// ServiceAccount.
func ServiceAccountKubeconfig(ctx context.Context, admin kubernetes.Interface, cp *ControlPlane, namespace, name, path string) error {
	token, err := ServiceAccountToken(ctx, admin, namespace, name)
	if err != nil {
		return err
	}
	return WriteKubeconfig(path, cp.ServerURL, cp.PKI.CACert, &clientcmdapi.AuthInfo{Token: token})
}

// ServiceAccountToken mints a token of the ServiceAccount with the
// TokenRequest API, valid for four hours (longer than any e2e run).
func ServiceAccountToken(ctx context.Context, admin kubernetes.Interface, namespace, name string) (string, error) {
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](4 * 3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for service account %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}
