package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends
// SIGKILL. Every process of the harness handles SIGTERM well within it.
const DefaultStopTimeout = 10 * time.Second

// Process is one child process of the harness: a control-plane component,
// the simulator or a publisher replica. Its output goes to a log file in the
// harness's temporary directory, never to the terminal, so that a failing
// test can show the tail of exactly the process that misbehaved.
type Process struct {
	// Name identifies the process in errors and log dumps.
	Name string
	// LogPath is the file that receives the process's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	waitErr error
	exited  bool
}

// StartProcess starts bin with args and env (added to the current
// environment) and returns without waiting for anything but the exec. The
// caller owns the process and must Stop it.
func StartProcess(name, logDir, bin string, args, env []string) (*Process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory for %s: %w", name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log file of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A process group of its own: a Ctrl-C in the terminal reaches the
	// harness only, which then stops every child in order. Should the
	// harness itself die (SIGKILL, a test binary killed on timeout), the
	// kernel kills the child too, so nothing is left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	running.add(p)
	go func() {
		err := cmd.Wait()
		running.remove(p)
		_ = logFile.Close()
		p.mu.Lock()
		p.waitErr, p.exited = err, true
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// registry tracks the live children of the harness, in start order.
type registry struct {
	mu    sync.Mutex
	procs []*Process
}

var running registry

func (r *registry) add(p *Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
}

func (r *registry) remove(p *Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, q := range r.procs {
		if q == p {
			r.procs = append(r.procs[:i], r.procs[i+1:]...)
			return
		}
	}
}

// StopAll stops every process the harness started and that still runs, the
// most recent first (publishers before the simulator, the API server before
// etcd), for an interrupted run that cannot wait for its cleanups.
func StopAll(timeout time.Duration) error {
	running.mu.Lock()
	procs := slices.Clone(running.procs)
	running.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].Stop(timeout))
	}
	return errors.Join(errs...)
}

// PID is the operating-system process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.waitErr
}

// Done is closed once the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode is the exit code once the process has ended, -1 before or when it
// was ended by a signal.
func (p *Process) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stop sends SIGTERM, waits up to timeout for the process to exit and then
// sends SIGKILL. It returns once the process is gone; stopping a process that
// has already exited is a no-op.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGTERM to %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	return p.Kill()
}

// Kill sends SIGKILL and waits for the process to be reaped. It is how the
// tests simulate a crashed replica.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGKILL to %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(DefaultStopTimeout):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID())
	}
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	return tailFile(p.LogPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer func() { _ = f.Close() }()
	const maxRead = 1 << 20
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		if _, err := f.Seek(st.Size()-maxRead, io.SeekStart); err != nil {
			return fmt.Sprintf("(reading log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(reading log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// tiny window before the child binds it is acceptable for a test harness;
// components that fail to bind are reported with their log.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns "127.0.0.1:PORT" for a free port.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// Poll calls cond every interval until it returns true, or ctx or the
// timeout ends. An error from cond is taken as "not yet" and kept: the last
// one is part of the timeout error, so that a failing wait says what it last
// saw. An error wrapped by Permanent ends the wait at once.
func Poll(ctx context.Context, interval, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		var pe *permanentError
		if errors.As(err, &pe) {
			return pe.err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w; last: %w", ctx.Err(), last)
			}
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// waitReady polls probe until it succeeds, failing early when the process
// exits, so that a component that crashes at start-up is reported at once
// with its log instead of after the whole deadline.
func waitReady(ctx context.Context, p *Process, timeout time.Duration, probe func(context.Context) error) error {
	err := Poll(ctx, 100*time.Millisecond, timeout, func(ctx context.Context) (bool, error) {
		if exited, werr := p.Exited(); exited {
			return false, Permanent(&exitedError{name: p.Name, err: werr})
		}
		if err := probe(ctx); err != nil {
			return false, err
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	var ee *exitedError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w\n--- %s log ---\n%s", ee, p.Name, p.LogTail(40))
	}
	return fmt.Errorf("waiting for %s to become ready: %w\n--- %s log ---\n%s", p.Name, err, p.Name, p.LogTail(40))
}

type exitedError struct {
	name string
	err  error
}

func (e *exitedError) Error() string {
	return fmt.Sprintf("%s exited during start-up: %v", e.name, e.err)
}

// Permanent marks an error returned by a Poll condition as final: Poll stops
// and returns it instead of waiting on.
func Permanent(err error) error { return &permanentError{err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
