//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// TestReleaseImage runs what we ship: the amd64 variant of the image `make
// image` wrote, loaded into podman from the OCI archive, runs the publisher
// as the Deployment of deploy/base does — its args and env, host network,
// read-only root filesystem, the image's own non-root user, every
// capability dropped, no privilege escalation, the credentials Secret and
// the in-cluster ServiceAccount token mounted where the kubelet mounts them
// — against the suite's control plane and simulator. Only what must differ
// outside a cluster is added: the cluster's own flags (as an overlay does),
// the simulator's endpoints, and loopback bind addresses.
func TestReleaseImage(t *testing.T) {
	s := newScenario(t)
	build, err := env.Paths.ImageBuild()
	if err != nil {
		t.Fatal(err)
	}
	podman := requirePodman(t)
	amd64, err := build.Variant("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}

	id, err := podman.Load(s.ctx, build.Archive)
	if err != nil {
		t.Fatalf("loading %s: %v", build.Archive, err)
	}
	t.Cleanup(func() {
		if err := podman.RemoveImage(context.Background(), id); err != nil {
			t.Errorf("removing the loaded image: %v", err)
		}
	})
	if "sha256:"+id != amd64.ConfigDigest {
		t.Fatalf("podman loaded image %s, the layout's linux/amd64 image has config %s", id, amd64.ConfigDigest)
	}
	img, err := podman.InspectImage(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	dep := shippedDeployment(t)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || pod.SecurityContext.RunAsGroup == nil {
		t.Fatalf("the Deployment sets no runAsUser/runAsGroup: %+v", pod.SecurityContext)
	}
	wantUser := fmt.Sprintf("%d:%d", *pod.SecurityContext.RunAsUser, *pod.SecurityContext.RunAsGroup)
	if img.Architecture != "amd64" || img.Config.User != wantUser || !slices.Equal(img.Config.Cmd, c.Args[:1]) {
		t.Errorf("loaded image: %s, user %q, cmd %v; want amd64, the Deployment's user %s and command %q",
			img.Architecture, img.Config.User, img.Config.Cmd, wantUser, c.Args[0])
	}

	s.createNode(node(nodeR, "cn-chengdu.i-2vcxxr", "10.244.0.0/24"))
	s.createNode(node(nodeS, "alicloud://cn-chengdu.i-2vcxxs", "10.244.1.0/24"))

	metricsAddr, err := framework.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	healthAddr, err := framework.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(c.Args)
	args = append(args, "--cluster-id="+clusterID, "--cluster-cidr="+strings.Join(clusterCIDRs, ","))
	args = append(args, env.Sim.CloudArgs()...)
	args = append(args, "--metrics-bind-address="+metricsAddr, "--health-bind-address="+healthAddr)

	opts := framework.ContainerOptions{
		Image:    id,
		Args:     args,
		Env:      append(containerEnv(t, dep, c), inClusterEnv(t)...),
		Mounts:   map[string]string{},
		RunFlags: podRunFlags(t, pod, c),
	}
	mountVolumes(t, s.dir, pod, c, opts.Mounts)
	mountServiceAccount(t, s, opts.Mounts)

	ctr, err := podman.Run(s.ctx, opts)
	if err != nil {
		t.Fatalf("starting the container: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of container %s ---\n%s", ctr.ID, ctr.Logs(context.Background(), 60))
		}
		if err := ctr.Stop(context.Background(), framework.DefaultStopTimeout); err != nil {
			t.Errorf("stopping container %s: %v", ctr.ID, err)
		}
	})

	pub := framework.NewEndpoints(metricsAddr, healthAddr)
	// A container that exits at start-up (a flag the image does not know,
	// a file it cannot read) fails the test at once, with its log.
	err = framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		st, err := ctr.Inspect(ctx)
		if err != nil {
			return false, err
		}
		if !st.State.Running {
			return false, framework.Permanent(fmt.Errorf("the container exited with code %d", st.State.ExitCode))
		}
		return pub.Healthy(ctx) == nil, nil
	})
	if err != nil {
		t.Fatalf("the container's publisher never answered /healthz: %v", err)
	}
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	s.waitNodeCondition(nodeR)
	s.waitNodeCondition(nodeS)
	err = framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		if err := pub.Ready(ctx); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("/readyz of the container never answered 200: %v", err)
	}
	if m, err := pub.Metrics(s.ctx); err != nil || m.Get("vpc_route_publisher_leader", nil) != 1 {
		t.Errorf("the container's publisher does not report itself leader (scrape error %v)", err)
	}

	st, err := ctr.Inspect(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.State.Running || st.State.Pid <= 0 {
		t.Fatalf("container state %+v, want running", st.State)
	}
	checkConfinement(t, st.State.Pid, *pod.SecurityContext.RunAsUser, *pod.SecurityContext.RunAsGroup, pod.SecurityContext.FSGroup)
	if !st.HostConfig.ReadonlyRootfs || st.HostConfig.NetworkMode != "host" {
		t.Errorf("podman runs the container with read-only root %v and network %q, want read-only and host", st.HostConfig.ReadonlyRootfs, st.HostConfig.NetworkMode)
	}
}

// requirePodman returns podman, failing when it is missing where apt-get
// could have installed it (make e2e does), and skipping loudly only where
// there is no apt-get.
func requirePodman(t *testing.T) *framework.Podman {
	t.Helper()
	p, err := framework.FindPodman()
	if err == nil {
		return p
	}
	if _, aptErr := exec.LookPath("apt-get"); aptErr != nil && errors.Is(err, framework.ErrNoPodman) {
		t.Skipf("SKIPPING THE RELEASE IMAGE SCENARIO: %v, and this machine has no apt-get to install them", err)
	}
	t.Fatal(err)
	return nil
}

// shippedDeployment renders deploy/base with the pinned kustomize and
// returns its Deployment.
func shippedDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	objs, err := framework.KustomizeBuild(context.Background(), filepath.Join(env.Paths.Bin, "kustomize"), filepath.Join(env.Paths.Root, "deploy", "base"))
	if err != nil {
		t.Fatal(err)
	}
	deps := framework.Filter(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("deploy/base renders %d Deployments, want 1", len(deps))
	}
	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(deps[0].Object, &dep); err != nil {
		t.Fatalf("decoding the Deployment: %v", err)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 || len(dep.Spec.Template.Spec.Containers[0].Args) == 0 {
		t.Fatalf("the Deployment has %d containers, want one with args", len(dep.Spec.Template.Spec.Containers))
	}
	return &dep
}

// podRunFlags translates the pod's network and the container's security
// context into podman flags, failing on a setting it does not know how to
// reproduce, so that a hardening added to the Deployment is run here too.
// The user is not passed: the image's own user must be the Deployment's
// (checkConfinement proves it on the running process).
func podRunFlags(t *testing.T, pod corev1.PodSpec, c corev1.Container) []string {
	t.Helper()
	if !pod.HostNetwork {
		t.Fatalf("the Deployment does not use the host network; this scenario runs it on the host network")
	}
	flags := []string{"--network=host"}
	if pod.SecurityContext.FSGroup != nil {
		flags = append(flags, "--group-add="+strconv.FormatInt(*pod.SecurityContext.FSGroup, 10))
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("the container has no securityContext")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Fatal("the container's root filesystem is not read-only")
	}
	flags = append(flags, "--read-only", "--read-only-tmpfs=false")
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatal("the container allows privilege escalation")
	}
	flags = append(flags, "--security-opt=no-new-privileges")
	if sc.Privileged != nil && *sc.Privileged {
		t.Fatal("the container is privileged")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 {
		t.Fatalf("capabilities %+v: want only drops", sc.Capabilities)
	}
	for _, capability := range sc.Capabilities.Drop {
		flags = append(flags, "--cap-drop="+string(capability))
	}
	return flags
}

// containerEnv resolves the container's env as the kubelet would for this
// pod, failing on a source it does not know.
func containerEnv(t *testing.T, dep *appsv1.Deployment, c corev1.Container) []string {
	t.Helper()
	var out []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			out = append(out, e.Name+"="+dep.Namespace)
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			limit := c.Resources.Limits.Memory()
			if limit.IsZero() {
				t.Fatalf("env %s refers to an unset memory limit", e.Name)
			}
			out = append(out, e.Name+"="+strconv.FormatInt(limit.Value(), 10))
		default:
			t.Fatalf("env %s: source %+v not reproduced by this scenario", e.Name, e.ValueFrom)
		}
	}
	return out
}

// inClusterEnv is what the kubelet sets for client-go's in-cluster
// configuration: the API server's address.
func inClusterEnv(t *testing.T) []string {
	t.Helper()
	u, err := url.Parse(env.CP.ServerURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}
}

// mountVolumes mounts each of the container's volumes as the kubelet would:
// a Secret volume becomes a directory with the suite's simulator key, its
// files of the volume's defaultMode, group-owned by the pod's fsGroup.
func mountVolumes(t *testing.T, dir string, pod corev1.PodSpec, c corev1.Container, mounts map[string]string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			t.Fatalf("volume mount %s has no volume", vm.Name)
		}
		v := pod.Volumes[i]
		if v.Secret == nil || !vm.ReadOnly {
			t.Fatalf("volume %s: only read-only Secret volumes are reproduced by this scenario", v.Name)
		}
		hostDir := filepath.Join(dir, "volumes", v.Name)
		if err := env.Sim.WriteValidCredentials(hostDir); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if v.Secret.DefaultMode != nil {
			mode = os.FileMode(*v.Secret.DefaultMode)
		}
		gid := -1
		if pod.SecurityContext.FSGroup != nil {
			gid = int(*pod.SecurityContext.FSGroup)
		}
		chownTree(t, hostDir, gid, mode)
		mounts[hostDir] = vm.MountPath
	}
}

// mountServiceAccount mounts a token of the shipped ServiceAccount and the
// cluster CA where client-go's in-cluster configuration reads them.
func mountServiceAccount(t *testing.T, s *scenario, mounts map[string]string) {
	t.Helper()
	token, err := framework.ServiceAccountToken(s.ctx, env.Kube, env.ServiceAccountNamespace, env.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, "volumes", "serviceaccount")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": env.CP.PKI.CACert, "namespace": []byte(env.ServiceAccountNamespace)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mounts[dir] = "/var/run/secrets/kubernetes.io/serviceaccount"
}

// chownTree gives dir and its files group gid (when not -1) and the files
// mode, the directories mode plus search permission.
func chownTree(t *testing.T, dir string, gid int, mode os.FileMode) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		m := mode
		if d.IsDir() {
			m |= (mode & 0o444) >> 2 // r → x
		}
		if err := os.Chown(p, -1, gid); err != nil {
			return err
		}
		return os.Chmod(p, m)
	})
	if err != nil {
		t.Fatalf("preparing volume %s: %v", dir, err)
	}
}

// checkConfinement reads the container's process from the host: it runs
// as uid and gid with the fsGroup as a supplementary group, holds no
// capability in any set, cannot gain privileges, and its root filesystem is
// mounted read-only.
func checkConfinement(t *testing.T, pid int, uid, gid int64, fsGroup *int64) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the container process's status: %v", err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	u, g := strconv.FormatInt(uid, 10), strconv.FormatInt(gid, 10)
	for k, want := range map[string]string{
		"Uid": u + " " + u + " " + u + " " + u, "Gid": g + " " + g + " " + g + " " + g,
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
	} {
		if fields[k] != want {
			t.Errorf("container process %s: %q, want %q", k, fields[k], want)
		}
	}
	if fsGroup != nil && !slices.Contains(strings.Fields(fields["Groups"]), strconv.FormatInt(*fsGroup, 10)) {
		t.Errorf("container process groups %q lack the fsGroup %d", fields["Groups"], *fsGroup)
	}
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatalf("reading the container's mounts: %v", err)
	}
	rootRO := false
	for _, line := range strings.Split(string(mountinfo), "\n") {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			rootRO = slices.Contains(strings.Split(f[5], ","), "ro")
		}
	}
	if !rootRO {
		t.Errorf("the container's root filesystem is not mounted read-only:\n%s", mountinfo)
	}
}
