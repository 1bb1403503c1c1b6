package framework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Module is the Go module path of the repository, used to find its root.
const Module = "github.com/vpc-route-publisher/vpc-route-publisher"

// Paths locate the repository, its built binaries and the shared test data.
type Paths struct {
	// Root is the repository root (the directory of go.mod).
	Root string
	// Bin holds the built binaries and tools (make build tools).
	Bin string
	// SpiderpoolCRDs is the directory of the SpiderIPPool CRD, which lives
	// beside the repository in shared/testdata/spiderpool.
	SpiderpoolCRDs string
	// CalicoCRDs is the directory of Calico's IPAM CRDs (both API groups),
	// beside the repository in shared/testdata/calico.
	CalicoCRDs string
}

// FindPaths walks up from the working directory to the repository root.
func FindPaths() (Paths, error) {
	dir, err := os.Getwd()
	if err != nil {
		return Paths{}, fmt.Errorf("getting working directory: %w", err)
	}
	for {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			root := dir
			return Paths{
				Root:           root,
				Bin:            filepath.Join(root, "bin"),
				SpiderpoolCRDs: filepath.Join(filepath.Dir(root), "shared", "testdata", "spiderpool"),
				CalicoCRDs:     filepath.Join(filepath.Dir(root), "shared", "testdata", "calico"),
			}, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Paths{}, fmt.Errorf("no go.mod of module %s above the working directory", Module)
		}
		dir = parent
	}
}

func isModuleRoot(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == Module
		}
	}
	return false
}

// RequireBinaries reports which of the named binaries are missing from Bin,
// with the make target that builds them.
func (p Paths) RequireBinaries(names ...string) error {
	var missing []string
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(p.Bin, n)); err != nil || st.IsDir() {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing binaries in %s: %s (run `make tools build`)", p.Bin, strings.Join(missing, ", "))
	}
	return nil
}

// Env is a whole test installation: control plane, the publisher's RBAC
// from deploy/base applied, the SpiderIPPool CRD installed, a kubeconfig for
// the publisher's ServiceAccount, and the simulator. Tests and the demo build
// on it.
type Env struct {
	Paths Paths
	Dir   string
	CP    *ControlPlane
	// Kube and Dynamic are admin clients.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Applier *Applier
	Sim     *Alisim
	// ServiceAccountNamespace and ServiceAccountName identify the
	// publisher's ServiceAccount as deploy/base ships it.
	ServiceAccountNamespace string
	ServiceAccountName      string
	// PublisherKubeconfig authenticates as that ServiceAccount.
	PublisherKubeconfig string
}

// Setup starts an Env in dir (a fresh temporary directory). On error,
// whatever was started is stopped again.
func Setup(ctx context.Context, dir string) (env *Env, err error) {
	paths, err := FindPaths()
	if err != nil {
		return nil, err
	}
	if err := paths.RequireBinaries("etcd", "kube-apiserver", "kustomize", "alisim"); err != nil {
		return nil, err
	}
	env = &Env{Paths: paths, Dir: dir}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()

	env.CP, err = StartControlPlane(ctx, ControlPlaneOptions{
		EtcdBin:      filepath.Join(paths.Bin, "etcd"),
		APIServerBin: filepath.Join(paths.Bin, "kube-apiserver"),
		Dir:          filepath.Join(dir, "controlplane"),
	})
	if err != nil {
		return nil, err
	}
	if env.Kube, err = kubernetes.NewForConfig(env.CP.Admin); err != nil {
		return nil, fmt.Errorf("building admin clientset: %w", err)
	}
	if env.Dynamic, err = dynamic.NewForConfig(env.CP.Admin); err != nil {
		return nil, fmt.Errorf("building admin dynamic client: %w", err)
	}
	if env.Applier, err = NewApplier(env.CP.Admin); err != nil {
		return nil, err
	}

	for what, dir := range map[string]string{"the SpiderIPPool CRD": paths.SpiderpoolCRDs, "the Calico IPAM CRDs": paths.CalicoCRDs} {
		crds, err := ReadManifests(dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		if err := env.Applier.InstallCRDs(ctx, Filter(crds, "CustomResourceDefinition")...); err != nil {
			return nil, err
		}
	}

	if err := env.applyDeployRBAC(ctx); err != nil {
		return nil, err
	}

	// The publisher's key holds exactly the shipped RAM policy, so that a
	// passing suite proves the policy sufficient.
	env.Sim, err = StartAlisim(ctx, AlisimOptions{
		Bin:       filepath.Join(paths.Bin, "alisim"),
		Dir:       filepath.Join(dir, "alisim"),
		RAMPolicy: filepath.Join(paths.Root, "deploy", "ram-policy.json"),
	})
	if err != nil {
		return nil, err
	}
	return env, nil
}

// applyDeployRBAC renders deploy/base with the pinned kustomize, applies its
// Namespace, ServiceAccount and RBAC objects (nothing else: the publisher
// runs as a local process) and writes a kubeconfig with a TokenRequest token
// of the ServiceAccount.
func (env *Env) applyDeployRBAC(ctx context.Context) error {
	objs, err := KustomizeBuild(ctx, filepath.Join(env.Paths.Bin, "kustomize"), filepath.Join(env.Paths.Root, "deploy", "base"))
	if err != nil {
		return err
	}
	rbac := Filter(objs, RBACKinds...)
	sas := Filter(rbac, "ServiceAccount")
	if len(sas) != 1 {
		return fmt.Errorf("deploy/base renders %d ServiceAccounts, want exactly 1", len(sas))
	}
	if err := env.Applier.Apply(ctx, rbac...); err != nil {
		return fmt.Errorf("applying the RBAC of deploy/base: %w", err)
	}
	env.ServiceAccountNamespace, env.ServiceAccountName = sas[0].GetNamespace(), sas[0].GetName()
	env.PublisherKubeconfig = filepath.Join(env.Dir, "publisher.kubeconfig")
	return ServiceAccountKubeconfig(ctx, env.Kube, env.CP, env.ServiceAccountNamespace, env.ServiceAccountName, env.PublisherKubeconfig)
}

// Stop stops the simulator and the control plane.
func (env *Env) Stop() error {
	var errs []error
	if env.Sim != nil {
		errs = append(errs, env.Sim.Stop())
	}
	if env.CP != nil {
		errs = append(errs, env.CP.Stop())
	}
	return errors.Join(errs...)
}

// Processes lists the long-running processes of the Env, for log dumps.
func (env *Env) Processes() []*Process {
	var ps []*Process
	if env.CP != nil {
		ps = append(ps, env.CP.Processes()...)
	}
	if env.Sim != nil && env.Sim.Process != nil {
		ps = append(ps, env.Sim.Process)
	}
	return ps
}
