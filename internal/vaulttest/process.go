package vaulttest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a child process whose stdout and stderr both go to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string

	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
	stopOnce sync.Once
}

// startProcess starts bin with args and env, appending its combined output to
// logPath. The child gets its own process group (so that any plugin processes
// it leaves behind can be killed with it) and, on Linux, SIGTERM when the test
// binary dies without running its cleanups.
func startProcess(name, bin string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logFile // an *os.File: the child writes to it directly
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	logFile.Close() // the child holds its own descriptor
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to shut down (SIGTERM), waits up to grace for it, then
// kills its whole process group. It is idempotent.
func (p *process) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		if p.exited() {
			killGroup(p.cmd.Process.Pid)
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		// Plugin processes normally exit with their server; reap stragglers.
		killGroup(p.cmd.Process.Pid)
	})
}

// logs returns everything the process has written so far.
func (p *process) logs() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", p.logPath, err)
	}
	return string(b)
}

// exitError describes why the process ended, for failure messages.
func (p *process) exitError() error {
	if !p.exited() {
		return nil
	}
	if p.waitErr == nil {
		return errors.New("exited with status 0")
	}
	return p.waitErr
}

// logTailOnFailure registers a cleanup that, when the test has failed, logs
// the last lines of the process's output. Register it after the cleanup that
// stops the process, so that it runs first (cleanups run last-in first-out)
// and the temporary directory holding the log still exists.
func logTailOnFailure(t testing.TB, p *process, lines int) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("last %d lines of %s output (%s):\n%s", lines, p.name, p.logPath, tail(p.logs(), lines))
	})
}

func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// childEnv returns the environment for Vault processes: the test's environment
// without any VAULT_* variable and with HOME replaced, plus extra.
func childEnv(home string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home)
	return append(env, extra...)
}
