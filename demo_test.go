package main

// Tests of make demo, the first command a newcomer runs.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestDemoCleansUp proves that the demo leaves no process and no temporary
// directory behind, whether it runs to its end, is interrupted at the
// terminal (Ctrl-C: SIGINT to its process group), or writes into a pipe
// closed early (make demo | head).
func TestDemoCleansUp(t *testing.T) {
	integration(t)
	manager, _ := binaries(t)
	requireTool(t, "head", "the demo piped into head")
	tests := []struct {
		name  string
		shell string // runs the demo
		until string // the demo's output line after which it is interrupted; "" lets it end
	}{
		{"to its end", "exec sh examples/demo.sh", ""},
		{"Ctrl-C", "exec sh examples/demo.sh", "a good change"},
		{"a closed pipe", "sh examples/demo.sh | head -n 3", ""},
	}
	workLine := regexp.MustCompile(`in (/\S+): manager`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.shell)
			cmd.Env = append(os.Environ(), "MANAGER="+manager)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			r := startCmd(t, cmd, nil)
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
			first := r.stdout.wait(t, `in /\S+: manager`, 2*time.Minute)
			work := workLine.FindStringSubmatch(first[0])[1]
			if tc.until != "" {
				r.stdout.wait(t, tc.until, time.Minute)
				syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			}
			r.wait(time.Minute)
			eventually(t, 10*time.Second, func() error {
				if _, err := os.Stat(work); err == nil {
					return fmt.Errorf("the demo's directory %s is still there", work)
				}
				if commandLineMentions(filepath.Base(work)) {
					return fmt.Errorf("a process of the demo still runs from %s", work)
				}
				return nil
			})
		})
	}
}
