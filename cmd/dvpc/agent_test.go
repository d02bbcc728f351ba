package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
)

func TestAgentMessages(t *testing.T) {
	var buf bytes.Buffer
	secret := bytes.Repeat([]byte{7}, 65)
	if err := writeAgentMsg(&buf, agentPut, []byte("STOREID"), secret, []byte("900")); err != nil {
		t.Fatal(err)
	}
	m, err := readAgentMsg(&buf)
	if err != nil || m.op != agentPut || len(m.fields) != 3 || string(m.fields[0]) != "STOREID" || !bytes.Equal(m.fields[1], secret) || string(m.fields[2]) != "900" {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
	m.wipe()
	if !bytes.Equal(m.buf, make([]byte, len(m.buf))) {
		t.Fatal("wipe left the secret in the buffer")
	}
	for _, bad := range [][]byte{
		{},
		{0, 0},                     // empty frame
		{4, 1, 'g'},                // longer than agentMaxMsg
		{0, 3, 'g', 5, 'a'},        // a field longer than the frame
		{0, 6, 'g', 0, 0, 0, 0, 0}, // too many fields
		{0, 9, 'g'},                // truncated
	} {
		if _, err := readAgentMsg(bytes.NewReader(bad)); err == nil {
			t.Errorf("frame %x accepted", bad)
		}
	}
	if err := writeAgentMsg(&buf, agentPut, make([]byte, 256)); err == nil {
		t.Error("a 256-byte field was written")
	}
}

func FuzzReadAgentMsg(f *testing.F) {
	var buf bytes.Buffer
	writeAgentMsg(&buf, agentPut, []byte("ID"), []byte("secret"), []byte("60"))
	f.Add(buf.Bytes())
	f.Add([]byte{0, 1, 'l'})
	f.Add([]byte{0, 3, 'g', 5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readAgentMsg(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeAgentMsg(&out, m.op, m.fields...); err != nil {
			t.Fatalf("a message read cannot be written back: %v", err)
		}
		if n := out.Len(); !bytes.Equal(out.Bytes(), b[:n]) {
			t.Fatalf("%x reads as %+v, which writes as %x", b, m, out.Bytes())
		}
	})
}

// agentProbe runs as another user (TestMain calls it): it asks the agent
// at sock for a store's keys and prints what it answered.
func agentProbe(sock string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer c.Close()
	if err := writeAgentMsg(c, agentGet, []byte(os.Getenv("DVPC_TEST_AGENT_STORE"))); err != nil {
		fmt.Println("write:", err)
		return 1
	}
	m, err := readAgentMsg(c)
	if err != nil {
		fmt.Println("read:", err)
		return 1
	}
	switch m.op {
	case agentErr:
		fmt.Printf("error: %s\n", m.fields[0])
	case agentKey:
		fmt.Println("KEY GIVEN")
	default:
		fmt.Printf("reply %c\n", m.op)
	}
	return 0
}

// agentPID returns the process that listens on sock, as the kernel says,
// and makes sure it is gone when the test ends.
func agentPID(t *testing.T, sock string) int {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatalf("no agent listens on %s: %v", sock, err)
	}
	defer c.Close()
	_, pid, ok := peerCred(c)
	if !ok || pid <= 0 {
		t.Fatal("the kernel does not say which process the agent is")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	return pid
}

// waitGone waits until process pid has ended.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for syscall.Kill(pid, 0) == nil {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && regexp.MustCompile(`\) Z `).Match(b) {
			return // ended; its parent has not reaped it yet
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentSession: one recovery code unlocks a snapshot, and the restore
// and log after it get no secret at all: the unlock agent serves them, and
// only one code is spent. The agent's socket is 0600 in a 0700 directory,
// it holds no secret in its arguments or environment, and it refuses
// another user even when the modes would let them in. `dvpc lock` ends it,
// and the next command must be unlocked again (exit 3).
func TestAgentSession(t *testing.T) {
	work, err := os.MkdirTemp("", "dvpc-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := filepath.Join(work, "run")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(work, "home")
	mkhome(t, home)
	store := filepath.Join(work, "store")
	sockDir := filepath.Join(rt, "dvpc")
	sock := filepath.Join(sockDir, "agent.sock")

	setup := newCLI(t, store, e2ePass).with("XDG_RUNTIME_DIR", rt)
	r := setup.must("init", "--argon2-memory", "8")
	codes := regexp.MustCompile(`(?m)^ +([0-9]+(-[A-Z2-7]{5}){6})$`).FindAllStringSubmatch(r.stdout, -1)
	if len(codes) != image.RecoveryCodes {
		t.Fatalf("init printed %d recovery codes:\n%s", len(codes), r)
	}
	code := codes[0][1]
	// Turned off, nothing is started.
	setup.must("log")
	if _, err := os.Lstat(sockDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("with DVPC_NO_AGENT=1, the agent directory exists: %v", err)
	}

	ag := newCLI(t, store, "").with("XDG_RUNTIME_DIR", rt).with("DVPC_NO_AGENT", "0")
	t.Cleanup(func() { ag.run("lock") })
	// A code with a wrong last character is refused as mistyped; it
	// neither spends a code nor starts the agent.
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", code[len(code)-1])
	bad := code[:len(code)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[i^1])
	r = ag.with("DVPC_PASSPHRASE", bad).expect(exitPassphrase, "log")
	if !strings.Contains(r.stderr, "this recovery code is mistyped (checksum fails): check each group") {
		t.Errorf("a mistyped code:\n%s", r)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed unlock started the agent: %v", err)
	}
	r = ag.with("DVPC_PASSPHRASE", code).must("snapshot", home)
	id := strings.TrimSpace(r.stdout)
	if !strings.Contains(r.stderr, "7 recovery codes remain") || !strings.Contains(r.stderr, "stays unlocked") {
		t.Errorf("the first command does not say the code is spent and the store stays unlocked:\n%s", r)
	}
	pid := agentPID(t, sock)

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent socket: %v, %v; want a socket of mode 0600", fi.Mode(), err)
	}
	if fi, err := os.Lstat(sockDir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("agent directory: %v, %v; want a directory of mode 0700", fi.Mode(), err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || len(environ) != 0 || bytes.Contains(cmdline, []byte(code)) || !bytes.Contains(cmdline, []byte("agent")) {
		t.Errorf("agent process: cmdline %q, environment %q (%v); want the agent, no secret, an empty environment", cmdline, environ, err)
	}

	// No secret at all: the agent unlocks.
	got := filepath.Join(work, "restored")
	r = ag.must("restore", "latest", "--to", got)
	requireSameTree(t, home, got)
	if r = ag.must("log"); !strings.Contains(r.stdout, id) || strings.Contains(r.stderr, "recovery") {
		t.Errorf("log through the agent:\n%s", r)
	}
	lay, err := image.OpenLayout(store)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := image.ReadKeyFile(t.Context(), lay)
	if err != nil {
		t.Fatal(err)
	}
	if kf.RecoveryLeft() != image.RecoveryCodes-1 {
		t.Errorf("%d recovery codes left after a session of three commands, want %d", kf.RecoveryLeft(), image.RecoveryCodes-1)
	}
	// The code started epoch 1, whose keys the agent holds; a rotation
	// through the agent hands it epoch 2's, with no secret typed.
	if kf.Epoch != 1 {
		t.Errorf("the code did not start a key epoch: epoch %d", kf.Epoch)
	}
	if r := ag.must("key", "rotate"); !strings.Contains(r.stderr, "key epoch 2 started") {
		t.Errorf("key rotate through the agent:\n%s", r)
	}
	if r := ag.must("log"); !strings.Contains(r.stdout, id) {
		t.Errorf("log through the agent after a rotation:\n%s", r)
	}

	// Another user is refused even when the modes let them connect.
	setpriv := requireTool(t, "setpriv", "util-linux")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(work, "probe")
	if err := os.WriteFile(probe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{rt: 0o755, sockDir: 0o755, sock: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", probe)
	cmd.Env = []string{"DVPC_TEST_AGENT_PROBE=" + sock, "DVPC_TEST_AGENT_STORE=" + kf.StoreID}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "error: refused: uid ") || strings.Contains(string(out), "KEY") {
		t.Errorf("a client of another user: %v\n%s", err, out)
	}
	for p, mode := range map[string]os.FileMode{rt: 0o700, sockDir: 0o700, sock: 0o600} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	ag.must("ls", "latest") // the agent still serves its user

	r = ag.must("lock")
	if !strings.Contains(r.stderr, "locked") {
		t.Errorf("lock:\n%s", r)
	}
	waitGone(t, pid)
	r = ag.expect(exitPassphrase, "log")
	if !strings.Contains(r.stderr, "no passphrase") {
		t.Errorf("after lock, log without a secret:\n%s", r)
	}
	if r = ag.must("lock"); !strings.Contains(r.stderr, "no unlock agent was running") {
		t.Errorf("lock without an agent:\n%s", r)
	}

	// The passphrase gets the same, and the idle time ends it.
	r = ag.with("DVPC_PASSPHRASE", e2ePass).with("DVPC_AGENT_TIMEOUT", "1s").must("log")
	if !strings.Contains(r.stderr, "stays unlocked") {
		t.Errorf("a passphrase does not start the agent:\n%s", r)
	}
	pid = agentPID(t, sock)
	ag.must("log")
	waitGone(t, pid) // one second without use
	ag.expect(exitPassphrase, "log")
}

// TestAgentIgnoresForeignDirectory: a socket directory that is not the
// user's own and private is never used: the command unlocks by itself.
func TestAgentIgnoresForeignDirectory(t *testing.T) {
	rt := t.TempDir()
	if err := os.Mkdir(filepath.Join(rt, "dvpc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(rt, "dvpc"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	d := newCLI(t, store, e2ePass).with("XDG_RUNTIME_DIR", rt)
	d.must("init", "--argon2-memory", "8")
	r := d.with("DVPC_NO_AGENT", "0").must("log")
	if !strings.Contains(r.stderr, "is not private") {
		t.Errorf("an open agent directory is not reported:\n%s", r)
	}
	if _, err := os.Lstat(filepath.Join(rt, "dvpc", "agent.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an agent was started in an open directory: %v", err)
	}
}
