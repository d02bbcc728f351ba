package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletion loads the script `dvpc completion SHELL` prints into
// bash, zsh and fish, and asks each shell, through it, what may follow
// what was typed: the answers come from the dvpc binary on PATH.
func TestCompletion(t *testing.T) {
	env := []string{"PATH=" + filepath.Dir(dvpcBin) + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "LC_ALL=C"}
	shell := func(t *testing.T, name string, args ...string) []string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.Fields(string(out))
	}
	requireHas := func(t *testing.T, what string, got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", what, got, w)
			}
		}
	}

	t.Run("bash", func(t *testing.T) {
		bash := requireTool(t, "bash", "bash")
		complete := func(words ...string) []string {
			script := `source <(dvpc completion bash) || exit 1
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dvpc_complete; printf '%s\n' "${COMPREPLY[@]}"`
			return shell(t, bash, append([]string{"-c", script, "bash"}, words...)...)
		}
		requireHas(t, "dvpc sn", complete("dvpc", "sn"), "snapshot")
		requireHas(t, "dvpc mirror a", complete("dvpc", "mirror", "a"), "add", "adopt")
		requireHas(t, "dvpc snapshot --ex", complete("dvpc", "snapshot", "--ex"), "--exclude")
		requireHas(t, "dvpc --st", complete("dvpc", "--st"), "--store")
		if got := shell(t, bash, "-c", "source <(dvpc completion bash) && complete -p dvpc"); !slices.Contains(got, "_dvpc_complete") {
			t.Errorf("bash does not complete dvpc with the script's function: %q", got)
		}
	})

	t.Run("zsh", func(t *testing.T) {
		zsh := requireTool(t, "zsh", "zsh")
		script, err := exec.Command(dvpcBin, "completion", "zsh").Output()
		if err != nil {
			t.Fatal(err)
		}
		shell(t, zsh, "-n", "-c", string(script)) // parses
		got := shell(t, zsh, "-f", "-c", "autoload -U compinit && compinit -u -D && source <(dvpc completion zsh) && print -r -- $_comps[dvpc]")
		if !slices.Equal(got, []string{"_dvpc"}) {
			t.Errorf("zsh does not complete dvpc with the script's function: %q", got)
		}
	})

	t.Run("fish", func(t *testing.T) {
		fish := requireTool(t, "fish", "fish")
		complete := func(line string) []string {
			out := shell(t, fish, "--no-config", "-c", "dvpc completion fish | source; complete -C '"+line+"'")
			return out
		}
		requireHas(t, "dvpc sn", complete("dvpc sn"), "snapshot")
		requireHas(t, "dvpc mirror a", complete("dvpc mirror a"), "add", "adopt")
		requireHas(t, "dvpc snapshot --ex", complete("dvpc snapshot --ex"), "--exclude")
	})

	t.Run("unknown shell", func(t *testing.T) {
		newCLI(t, t.TempDir(), "").expect(exitUsage, "completion", "tcsh")
	})
}
