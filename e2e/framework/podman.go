package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Podman runs the release image the way a kubelet would run the Deployment's
// container, with the podman CLI as root. It always passes --runtime=runc
// (crun fails on hosts with hybrid cgroups), the cgroupfs manager and file
// events (no systemd or journald is needed), and the nofile/nproc ulimits
// runc needs there.
type Podman struct {
	Bin string
}

// ErrNoPodman means podman or runc is not installed: `make e2e` installs
// them with hack/ensure-deb.sh where apt-get exists.
var ErrNoPodman = errors.New("podman and runc are not installed (`make e2e` installs them with hack/ensure-deb.sh)")

// PodmanStopTimeout bounds a container's stop: SIGTERM, then SIGKILL after
// the grace period given to podman stop, and the CLI itself killed after
// this long.
const PodmanStopTimeout = 30 * time.Second

// FindPodman returns a Podman when both podman and runc are on PATH.
func FindPodman() (*Podman, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPodman, err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPodman, err)
	}
	return &Podman{Bin: bin}, nil
}

func (p *Podman) globalArgs() []string {
	return []string{"--runtime=runc", "--cgroup-manager=cgroupfs", "--events-backend=file"}
}

// run runs one podman command, bounded by timeout, and returns its stdout.
func (p *Podman) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p.Bin, append(p.globalArgs(), args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Load loads an OCI archive (podman picks the variant of the host's
// platform from a multi-arch index) and returns the image ID, which is the
// digest of the image's config.
func (p *Podman) Load(ctx context.Context, archive string) (string, error) {
	out, err := p.run(ctx, 5*time.Minute, "load", "--quiet", "--input", archive)
	if err != nil {
		return "", err
	}
	// "Loaded image: <name>" (or "Loaded image(s): <name>,..."): resolve
	// the name to the ID.
	_, names, ok := strings.Cut(strings.TrimSpace(out), ": ")
	if !ok {
		return "", fmt.Errorf("podman load printed %q, want the loaded image's name", out)
	}
	name := strings.TrimSpace(strings.Split(names, ",")[0])
	id, err := p.run(ctx, time.Minute, "image", "inspect", "--format", "{{.Id}}", name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(id), nil
}

// RemoveImage removes an image by ID.
func (p *Podman) RemoveImage(ctx context.Context, id string) error {
	_, err := p.run(ctx, time.Minute, "rmi", "--force", id)
	return err
}

// ImageInspect is the part of `podman image inspect` the tests read.
type ImageInspect struct {
	ID           string `json:"Id"`
	Architecture string
	Os           string
	User         string
	Config       struct {
		User       string
		Entrypoint []string
		Cmd        []string
		Labels     map[string]string
	}
}

// InspectImage inspects an image by ID.
func (p *Podman) InspectImage(ctx context.Context, id string) (*ImageInspect, error) {
	out, err := p.run(ctx, time.Minute, "image", "inspect", id)
	if err != nil {
		return nil, err
	}
	var res []ImageInspect
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		return nil, fmt.Errorf("decoding podman image inspect of %s (%d results): %w", id, len(res), err)
	}
	return &res[0], nil
}

// ContainerOptions are the `podman run` settings of a container.
type ContainerOptions struct {
	Image string
	// Args follow the image; the image's entrypoint stays.
	Args []string
	// Env is NAME=value.
	Env []string
	// Mounts are read-only bind mounts, host path → container path.
	Mounts map[string]string
	// RunFlags are further `podman run` flags (security settings, network).
	RunFlags []string
}

// Container is a detached container started by Run; Stop removes it.
type Container struct {
	ID     string
	podman *Podman
}

// Run starts a detached container. The caller must Stop it.
func (p *Podman) Run(ctx context.Context, o ContainerOptions) (*Container, error) {
	args := []string{"run", "--detach", "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"}
	args = append(args, o.RunFlags...)
	for _, e := range o.Env {
		args = append(args, "--env="+e)
	}
	for host, ctr := range o.Mounts {
		args = append(args, "--volume="+host+":"+ctr+":ro")
	}
	args = append(args, o.Image)
	args = append(args, o.Args...)
	out, err := p.run(ctx, 2*time.Minute, args...)
	if err != nil {
		return nil, err
	}
	id := strings.TrimSpace(out)
	if id == "" {
		return nil, fmt.Errorf("podman run printed no container ID")
	}
	return &Container{ID: id, podman: p}, nil
}

// ContainerState is the part of `podman inspect` the tests read.
type ContainerState struct {
	State struct {
		Running  bool
		Pid      int
		ExitCode int
	}
	HostConfig struct {
		ReadonlyRootfs bool
		CapDrop        []string
		NetworkMode    string
		SecurityOpt    []string
	}
}

// Inspect returns the container's state.
func (c *Container) Inspect(ctx context.Context) (*ContainerState, error) {
	out, err := c.podman.run(ctx, time.Minute, "container", "inspect", c.ID)
	if err != nil {
		return nil, err
	}
	var res []ContainerState
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		return nil, fmt.Errorf("decoding podman inspect of %s (%d results): %w", c.ID, len(res), err)
	}
	return &res[0], nil
}

// Logs returns the last n lines the container wrote.
func (c *Container) Logs(ctx context.Context, n int) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.podman.Bin, append(c.podman.globalArgs(), "logs", fmt.Sprintf("--tail=%d", n), c.ID)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(podman logs %s: %v)\n%s", c.ID, err, out)
	}
	return string(out)
}

// Stop stops the container (SIGTERM, SIGKILL after grace) and removes it,
// each step bounded in time; the removal runs even when the stop failed.
func (c *Container) Stop(ctx context.Context, grace time.Duration) error {
	_, stopErr := c.podman.run(ctx, PodmanStopTimeout+grace, "stop", fmt.Sprintf("--time=%d", int(grace.Seconds())), c.ID)
	_, rmErr := c.podman.run(ctx, PodmanStopTimeout, "rm", "--force", "--time=0", c.ID)
	return errors.Join(stopErr, rmErr)
}
