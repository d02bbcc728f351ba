package main

// End-to-end tests of the dvpc command. TestMain builds the binary once; the
// tests run it as a subprocess with a controlled environment against stores
// in temporary directories, and compare restored trees with internal/treecmp.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/ssh"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
)

// dvpcBin is the dvpc binary built by TestMain.
var dvpcBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if sock := os.Getenv("DVPC_TEST_AGENT_PROBE"); sock != "" {
		return agentProbe(sock) // this binary runs as another user's client
	}
	// No command run in this process starts an unlock agent; the tests
	// of the agent turn it on for their commands.
	os.Setenv("DVPC_NO_AGENT", "1")
	dir, err := os.MkdirTemp("", "dvpc-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvpc tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvpc tests: the go command is not in PATH; it is needed to build dvpc:", err)
		return 1
	}
	dvpcBin = filepath.Join(dir, "dvpc")
	build := exec.Command(gobin, "build", "-tags", "dvpc_unsafe_test", "-o", dvpcBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "dvpc tests: go build -o %s . failed: %v\n%s", dvpcBin, err, out)
		return 1
	}
	return m.Run()
}

// cmdTimeout bounds every dvpc run, so that a hang fails the test instead of
// stalling it.
const cmdTimeout = 3 * time.Minute

// result is the outcome of one dvpc run.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("dvpc %s: exit %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// dvpcCLI runs the dvpc binary on one store with a controlled environment:
// PATH, a private HOME, TZ=UTC, LC_ALL=C, DVPC_NO_AGENT=1 (no unlock agent
// outlives the run) and the variables in env, which override them; nothing
// else. The process runs in a new session, so it never has a terminal to
// prompt on.
type dvpcCLI struct {
	t     testing.TB
	store string
	dir   string // working directory
	env   map[string]string
}

func newCLI(t testing.TB, store, passphrase string) *dvpcCLI {
	t.Helper()
	d := &dvpcCLI{t: t, store: store, dir: t.TempDir(), env: map[string]string{}}
	if passphrase != "" {
		d.env["DVPC_PASSPHRASE"] = passphrase
	}
	return d
}

// with returns a copy of d with another environment variable set.
func (d *dvpcCLI) with(k, v string) *dvpcCLI {
	c := *d
	c.env = map[string]string{}
	for k0, v0 := range d.env {
		c.env[k0] = v0
	}
	c.env[k] = v
	return &c
}

// onStore returns a copy of d that works on another store.
func (d *dvpcCLI) onStore(store string) *dvpcCLI {
	c := *d
	c.store = store
	return &c
}

// command builds the process for dvpc --store STORE args...
func (d *dvpcCLI) command(ctx context.Context, args ...string) (*exec.Cmd, []string) {
	full := append([]string{"--store", d.store}, args...)
	cmd := exec.CommandContext(ctx, dvpcBin, full...)
	cmd.Dir = d.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.dir, "TZ=UTC", "LC_ALL=C", "DVPC_NO_AGENT=1"}
	for k, v := range d.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, full
}

// run runs dvpc and returns its exit code and output.
func (d *dvpcCLI) run(args ...string) result {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd, full := d.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: full, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		d.t.Fatalf("dvpc %s did not finish: %v (%v)\n%s", strings.Join(full, " "), err, ctx.Err(), r)
	}
	return r
}

// expect runs dvpc and fails the test unless it exits with code.
func (d *dvpcCLI) expect(code int, args ...string) result {
	d.t.Helper()
	r := d.run(args...)
	if r.code != code {
		d.t.Fatalf("want exit %d, got:\n%s", code, r)
	}
	return r
}

// must runs dvpc and fails the test unless it succeeds.
func (d *dvpcCLI) must(args ...string) result {
	d.t.Helper()
	return d.expect(0, args...)
}

// snapshot takes a snapshot of dir and returns its ID.
func (d *dvpcCLI) snapshot(dir string) string {
	d.t.Helper()
	r := d.must("snapshot", dir)
	id := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(id) {
		d.t.Fatalf("snapshot printed %q, want a 12-digit ID\n%s", id, r)
	}
	return id
}

// requireRestores restores snap into a new directory and requires it to
// be identical to want: contents, types, modes, times and links.
func (d *dvpcCLI) requireRestores(snap, want string) {
	d.t.Helper()
	got := filepath.Join(d.t.TempDir(), "restored")
	d.must("restore", snap, "--to", got)
	requireSameTree(d.t, want, got)
}

// snapshotRefs lists the tags of the store's snapshots, oldest first, as
// `dvpc --json log` gives them.
func (d *dvpcCLI) snapshotRefs() []string {
	d.t.Helper()
	var list []struct {
		Ref string `json:"ref"`
	}
	r := d.must("--json", "log")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		d.t.Fatalf("log: %v\n%s", err, r)
	}
	var refs []string
	for _, l := range list {
		refs = append(refs, l.Ref)
	}
	return refs
}

// logEntry is one snapshot as `dvpc --json log` lists it.
type logEntry struct {
	ID   string    `json:"id"`
	Ref  string    `json:"ref"`
	Time time.Time `json:"time"`
	Seq  uint64    `json:"seq"`
	Path string    `json:"path"`
}

func (d *dvpcCLI) log() []logEntry {
	d.t.Helper()
	// --json is a global flag: it goes before the command.
	r := d.must("--json", "log")
	var out []logEntry
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		d.t.Fatalf("log printed no JSON list: %v\n%s", err, r)
	}
	return out
}

func logIDs(es []logEntry) []string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

// requireTool returns the path of a program the tests run, or fails the test
// naming the Debian package that provides it.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v); install Debian's %s package: apt-get install -y %s", name, err, pkg, pkg)
	}
	return p
}

// mkhome builds the sample home with testdata/mkhome.sh at dest, which must
// not exist.
func mkhome(t testing.TB, dest string) {
	t.Helper()
	bash := requireTool(t, "bash", "bash")
	if _, err := exec.LookPath("setfattr"); err != nil {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Fatalf("mkhome.sh needs setfattr or python3 to set xattrs; install Debian's attr package: apt-get install -y attr")
		}
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "testdata", "mkhome.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bash, script, dest).CombinedOutput()
	if err != nil {
		t.Fatalf("mkhome.sh %s: %v\n%s", dest, err, out)
	}
}

// copyTree copies a whole tree with cp -a (hard links, modes, xattrs and
// nanosecond times kept); dst must not exist.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	cp := requireTool(t, "cp", "coreutils")
	if out, err := exec.Command(cp, "-a", "--", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// requireSameTree fails the test unless got is identical to want.
func requireSameTree(t testing.TB, want, got string) {
	t.Helper()
	diffs, err := treecmp.Compare(want, got)
	if err != nil {
		t.Fatalf("compare %s with %s: %v", want, got, err)
	}
	if len(diffs) > 0 {
		t.Fatalf("%s differs from %s: %s", got, want, treecmp.Format(diffs))
	}
}

// treeState describes every entry below root: type, mode, size, mtime, and
// the SHA-256 of files and the target of symlinks. Two equal states mean
// nothing was written.
func treeState(t testing.TB, root string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v mtime=%d", fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha256=%x", fi.Size(), sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		st[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return st
}

// requireSameState fails the test unless nothing below a tree changed.
func requireSameState(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%q removed (was %s)", p, b))
		case a != b:
			diffs = append(diffs, fmt.Sprintf("%q changed: %s -> %s", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q added (%s)", p, a))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Fatalf("%s changed:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// copyStore copies a store directory (regular files and directories only).
func copyStore(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case de.IsDir():
			return os.MkdirAll(target, fi.Mode().Perm()|0o700)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, fi.Mode().Perm())
		}
		return fmt.Errorf("%s: unexpected %v in a store", p, fi.Mode())
	})
	if err != nil {
		t.Fatalf("copy store %s to %s: %v", src, dst, err)
	}
}

// storeRef is one tag of a store's index.json.
type storeRef struct {
	Name string
	Desc v1.Descriptor
}

func readStoreIndex(t testing.TB, store string) (*v1.IndexManifest, []storeRef) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("parse %s/index.json: %v", store, err)
	}
	var refs []storeRef
	for _, d := range idx.Manifests {
		refs = append(refs, storeRef{Name: d.Annotations["org.opencontainers.image.ref.name"], Desc: d})
	}
	return &idx, refs
}

func writeStoreIndex(t testing.TB, store string, idx *v1.IndexManifest) {
	t.Helper()
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "index.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// findRef returns the tag name, or the snapshot tag ending in -ID.
func findRef(t testing.TB, refs []storeRef, name string) storeRef {
	t.Helper()
	for _, r := range refs {
		if r.Name == name || strings.HasPrefix(r.Name, "snap-") && strings.HasSuffix(r.Name, "-"+name) {
			return r
		}
	}
	t.Fatalf("no tag %q among %v", name, refs)
	return storeRef{}
}

func blobPath(store string, d v1.Hash) string {
	return filepath.Join(store, "blobs", d.Algorithm, d.Hex)
}

func readBlob(t testing.TB, store string, d v1.Hash) []byte {
	t.Helper()
	b, err := os.ReadFile(blobPath(store, d))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putBlob stores b in a store's blob directory and returns its digest.
func putBlob(t testing.TB, store string, b []byte) v1.Hash {
	t.Helper()
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := os.WriteFile(blobPath(store, h), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// snapshotManifest reads the manifest of the snapshot with the given ID.
func snapshotManifest(t testing.TB, store, id string) (storeRef, *v1.Manifest) {
	t.Helper()
	_, refs := readStoreIndex(t, store)
	r := findRef(t, refs, id)
	var m v1.Manifest
	if err := json.Unmarshal(readBlob(t, store, r.Desc.Digest), &m); err != nil {
		t.Fatalf("manifest of %s: %v", id, err)
	}
	return r, &m
}

// randomFile writes n bytes from a seeded generator.
func randomFile(t testing.TB, path string, seed uint64, n int) []byte {
	t.Helper()
	var s [32]byte
	copy(s[:], fmt.Sprintf("dvpc test data %d", seed))
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// flipByte inverts one byte of a file in place.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// signSSHSIG makes an armored SSHSIG signature of msg in dvpc's namespace
// with any ed25519 key, as `ssh-keygen -Y sign -n dvpc-snapshot` would.
func signSSHSIG(t testing.TB, priv ed25519.PrivateKey, msg []byte) []byte {
	t.Helper()
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.Sum512(msg)
	signed := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{image.SignatureNamespace, "", "sha512", h[:]})...)
	sig, err := signer.Sign(crand.Reader, signed)
	if err != nil {
		t.Fatal(err)
	}
	blob := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Version                      uint32
		PublicKey                    []byte
		Namespace, Reserved, HashAlg string
		Signature                    []byte
	}{1, signer.PublicKey().Marshal(), image.SignatureNamespace, "", "sha512", ssh.Marshal(sig)})...)
	return []byte("-----BEGIN SSH SIGNATURE-----\n" + base64.StdEncoding.EncodeToString(blob) + "\n-----END SSH SIGNATURE-----\n")
}

const (
	e2ePass   = "correct horse battery staple"
	notesPath = "docs/notes.md"
)

// e2eFixture is one store made from the sample home with three snapshots:
//
//	1: the sample home as mkhome.sh makes it;
//	2: docs/notes.md rewritten, docs/added.txt added, "notes from meeting.txt" removed;
//	3: .bashrc appended to; docs/notes.md unchanged since 2.
type e2eFixture struct {
	work  string
	home  string    // the live home, as snapshot 3 captured it
	refs  [3]string // copies of the home as each snapshot captured it
	store string
	ids   [3]string
	times [3]time.Time
	codes []string // recovery codes printed by init
	notes [2][]byte
	cli   *dvpcCLI
}

func newE2EFixture(t *testing.T) *e2eFixture {
	t.Helper()
	f := &e2eFixture{work: t.TempDir()}
	f.home = filepath.Join(f.work, "home")
	f.store = filepath.Join(f.work, "store")
	mkhome(t, f.home)
	f.cli = newCLI(t, f.store, e2ePass)

	r := f.cli.must("init", "--argon2-memory", "8")
	codeRE := regexp.MustCompile(`^[0-9]+(-[A-Z2-7]{1,5})+$`)
	for _, line := range strings.Split(r.stdout, "\n") {
		if c := strings.TrimSpace(line); codeRE.MatchString(c) {
			f.codes = append(f.codes, c)
		}
	}
	if len(f.codes) != image.RecoveryCodes {
		t.Fatalf("init printed %d recovery codes, want %d:\n%s", len(f.codes), image.RecoveryCodes, r)
	}

	var err error
	if f.notes[0], err = os.ReadFile(filepath.Join(f.home, notesPath)); err != nil {
		t.Fatal(err)
	}
	capture := func(i int) {
		f.ids[i] = f.cli.snapshot(f.home)
		f.refs[i] = filepath.Join(f.work, fmt.Sprintf("ref%d", i+1))
		copyTree(t, f.home, f.refs[i])
		// The copies stand for what was snapshotted: make sure cp -a kept
		// everything treecmp looks at.
		requireSameTree(t, f.home, f.refs[i])
	}
	capture(0)

	f.notes[1] = []byte("# Notes\n\nRewritten after the first snapshot.\n")
	writeFileAt(t, filepath.Join(f.home, notesPath), f.notes[1], time.Date(2024, 5, 2, 9, 30, 0, 123, time.UTC))
	writeFileAt(t, filepath.Join(f.home, "docs", "added.txt"), []byte("added between snapshots 1 and 2\n"), time.Date(2024, 5, 2, 9, 31, 0, 0, time.UTC))
	if err := os.Remove(filepath.Join(f.home, "notes from meeting.txt")); err != nil {
		t.Fatal(err)
	}
	capture(1)

	bashrc := filepath.Join(f.home, ".bashrc")
	b, err := os.ReadFile(bashrc)
	if err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, bashrc, append(b, "export EDITOR=vi\n"...), time.Date(2024, 5, 3, 8, 0, 0, 0, time.UTC))
	capture(2)

	es := f.cli.log()
	if got := logIDs(es); !slices.Equal(got, f.ids[:]) {
		t.Fatalf("log lists %v, want %v", got, f.ids)
	}
	for i, e := range es {
		f.times[i] = e.Time
	}
	return f
}

// writeFileAt writes a file and sets its mtime.
func writeFileAt(t testing.TB, path string, b []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// cliFor returns a CLI on the fixture's store for the test t.
func (f *e2eFixture) cliFor(t *testing.T) *dvpcCLI {
	return newCLI(t, f.store, e2ePass)
}

// scratch returns a copy of the fixture's store for a test that changes it,
// and a CLI on it.
func (f *e2eFixture) scratch(t *testing.T) (string, *dvpcCLI) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	copyStore(t, f.store, dir)
	return dir, newCLI(t, dir, e2ePass)
}

// TestCLI runs the dvpc command against one store made from the sample home.
func TestCLI(t *testing.T) {
	f := newE2EFixture(t)

	// Commands with a fixed expected exit code and output, on the shared
	// store, which they must not change.
	simple := []struct {
		name           string
		args           []string
		code           int
		stdoutHas      []string
		stderrHas      []string
		stdoutNot      []string
		noPass         bool
		createsNothing bool
	}{
		{name: "verify", args: []string{"verify"}, stdoutHas: []string{"checked structure of 3 snapshots", ": 0 problems"}},
		{name: "verify read-data", args: []string{"verify", "--read-data"}, stdoutHas: []string{"checked structure and data of 3 snapshots", ": 0 problems"}},
		{name: "log", args: []string{"log"}, stdoutHas: []string{f.ids[0], f.ids[1], f.ids[2]}},
		{name: "ls path", args: []string{"ls", f.ids[1], "docs"}, stdoutHas: []string{"docs/added.txt", "docs/notes.md", "docs/latest -> notes.md"}, stdoutNot: []string{"notes from meeting.txt"}},
		{name: "ls latest", args: []string{"ls", "latest"}, stdoutHas: []string{".bashrc", `"new\nline.txt"`, "docs/latest -> notes.md"}},
		{name: "cat config", args: []string{"cat", "config", f.ids[0]}, stdoutHas: []string{`"seq": 1`, f.home}},
		{name: "key signer needs no passphrase", args: []string{"key", "signer"}, noPass: true, stdoutHas: []string{`namespaces="dvpc-snapshot" ssh-ed25519 `}},
		{name: "unknown snapshot", args: []string{"restore", "0123456789ab", "--to", "x"}, code: exitNotFound, stderrHas: []string{"no such snapshot"}},
		{name: "path not in snapshot", args: []string{"restore", "latest", "no/such/file", "--stdout"}, code: exitNotFound, stderrHas: []string{"no/such/file"}},
		{name: "restore without target", args: []string{"restore", "latest"}, code: exitUsage, stderrHas: []string{"--to"}},
		{name: "restore with a dangling --to", args: []string{"restore", "latest", "--to"}, code: exitUsage, createsNothing: true},
		{name: "unknown flag after the command", args: []string{"log", "--no-such-flag"}, code: exitUsage},
		{name: "unknown command", args: []string{"no-such-command"}, code: exitUsage},
		{name: "global --json after the command", args: []string{"log", "--json"}, stdoutHas: []string{`"id":"` + f.ids[2] + `"`}},
		{name: "no passphrase", args: []string{"log"}, noPass: true, code: exitPassphrase, stderrHas: []string{"DVPC_PASSPHRASE"}},
	}
	for _, c := range simple {
		t.Run(c.name, func(t *testing.T) {
			before := treeState(t, f.store)
			d := newCLI(t, f.store, e2ePass)
			if c.noPass {
				d = newCLI(t, f.store, "")
			}
			r := d.run(c.args...)
			if r.code != c.code {
				t.Errorf("want exit %d, got:\n%s", c.code, r)
			}
			for _, s := range c.stdoutHas {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r)
				}
			}
			for _, s := range c.stdoutNot {
				if strings.Contains(r.stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, r)
				}
			}
			for _, s := range c.stderrHas {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r)
				}
			}
			if c.createsNothing {
				// A command that fails on its arguments creates nothing.
				if ents, _ := os.ReadDir(d.dir); len(ents) > 0 {
					t.Errorf("the failed command created %d entries in its working directory, e.g. %q", len(ents), ents[0].Name())
				}
			}
			requireSameState(t, "the store", before, treeState(t, f.store))
		})
	}

	scenarios := []struct {
		name string
		fn   func(t *testing.T, f *e2eFixture)
	}{
		{"round trip", testRoundTrip},
		{"snapshot --json", testSnapshotJSON},
		{"restore --at", testRestoreAt},
		{"log path lists distinct versions", testLogPath},
		{"restore --stdout", testRestoreStdout},
		{"diff", testDiff},
		{"wrong passphrase", testWrongPassphrase},
		{"recovery code works once", testRecoveryCode},
		{"key passwd", testKeyPasswd},
		{"restore into a non-empty directory", testRestoreNonEmpty},
		{"corrupt pack", testCorruptPack},
		{"altered snapshot manifest", testAlteredManifest},
		{"signature by another store", testForeignStoreSignature},
		{"signature by another key", testForeignKeySignature},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) { s.fn(t, f) })
	}

	// Nothing above may have changed the shared store.
	f.cli.must("verify", "--read-data")
}

func testRoundTrip(t *testing.T, f *e2eFixture) {
	for i, spec := range []string{f.ids[0], f.ids[1], "latest"} {
		dir := filepath.Join(t.TempDir(), "restored")
		r := f.cliFor(t).must("restore", spec, "--to", dir)
		if !strings.Contains(r.stderr, "restored snapshot") {
			t.Errorf("restore does not report what it did:\n%s", r)
		}
		requireSameTree(t, f.refs[i], dir)
	}
	// The live home is what the latest snapshot holds.
	dir := filepath.Join(t.TempDir(), "restored")
	f.cliFor(t).must("restore", "--to", dir, "latest")
	requireSameTree(t, f.home, dir)
}

func testSnapshotJSON(t *testing.T, f *e2eFixture) {
	_, d := f.scratch(t)
	// --json after the command, as the usage line shows it.
	r := d.must("snapshot", "--json", f.home)
	var out struct {
		ID        string `json:"id"`
		Files     int64  `json:"files"`
		BytesRead int64  `json:"bytes_read"`
		BytesNew  int64  `json:"bytes_new"`
		Errors    int64  `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("snapshot --json printed no JSON: %v\n%s", err, r)
	}
	if len(out.ID) != 12 || out.Files == 0 || out.Errors != 0 {
		t.Errorf("snapshot --json = %+v, want an ID, files and no errors", out)
	}
}

func testRestoreAt(t *testing.T, f *e2eFixture) {
	between := f.times[0].Add(f.times[1].Sub(f.times[0]) / 2)
	if !between.After(f.times[0]) || !between.Before(f.times[1]) {
		t.Fatalf("no time strictly between snapshots at %v and %v", f.times[0], f.times[1])
	}
	at := between.UTC().Format(time.RFC3339Nano)
	dir := filepath.Join(t.TempDir(), "restored")
	r := f.cliFor(t).must("restore", "--at", at, "--to", dir)
	if !strings.Contains(r.stderr, "chose snapshot "+f.ids[0]) {
		t.Errorf("restore --at %s does not say it chose %s:\n%s", at, f.ids[0], r)
	}
	requireSameTree(t, f.refs[0], dir)
	got, err := os.ReadFile(filepath.Join(dir, notesPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.notes[0]) {
		t.Errorf("restore --at %s: %s holds %q, want the first version %q", at, notesPath, got, f.notes[0])
	}
	// With --at every argument is a path.
	r = f.cliFor(t).must("restore", "--at", at, notesPath, "--stdout")
	if r.stdout != string(f.notes[0]) {
		t.Errorf("restore --at %s %s --stdout printed %q, want %q", at, notesPath, r.stdout, f.notes[0])
	}
	// Before the first snapshot there is nothing.
	f.cliFor(t).expect(exitNotFound, "restore", "--at", "2001-01-01", "--to", filepath.Join(t.TempDir(), "none"))
}

func testLogPath(t *testing.T, f *e2eFixture) {
	r := f.cliFor(t).must("log", notesPath)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SNAPSHOT") ||
		!strings.HasPrefix(lines[1], f.ids[0]) || !strings.HasPrefix(lines[2], f.ids[1]) {
		t.Errorf("log %s: want a header and the versions of %s and %s:\n%s", notesPath, f.ids[0], f.ids[1], r)
	}
	// An absolute path under the snapshotted directory names the same file.
	r2 := f.cliFor(t).must("log", filepath.Join(f.home, notesPath))
	if r2.stdout != r.stdout {
		t.Errorf("log with an absolute path differs:\n%s\nwant:\n%s", r2, r.stdout)
	}
	// A file that never changed has one version; a removed one too.
	for _, p := range []string{"docs/report.csv", "notes from meeting.txt"} {
		r := f.cliFor(t).must("log", p)
		if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stdout, "\n"+f.ids[0]) {
			t.Errorf("log %q: want one version, from %s:\n%s", p, f.ids[0], r)
		}
	}
	// .bashrc changed in 3 only.
	r = f.cliFor(t).must("log", ".bashrc")
	if n := strings.Count(r.stdout, "\n"); n != 3 || !strings.Contains(r.stdout, "\n"+f.ids[2]) {
		t.Errorf("log .bashrc: want the versions of %s and %s:\n%s", f.ids[0], f.ids[2], r)
	}
	f.cliFor(t).expect(exitNotFound, "log", "no/such/file")
}

func testRestoreStdout(t *testing.T, f *e2eFixture) {
	for i, spec := range []string{f.ids[0], "latest"} {
		r := f.cliFor(t).must("restore", spec, notesPath, "--stdout")
		if r.stdout != string(f.notes[i]) {
			t.Errorf("restore %s %s --stdout printed %q, want %q", spec, notesPath, r.stdout, f.notes[i])
		}
	}
	// A sparse file comes out whole, holes as zeros.
	r := f.cliFor(t).must("restore", "latest", "--stdout", "sparse.img")
	want, err := os.ReadFile(filepath.Join(f.home, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want) {
		t.Errorf("restore --stdout sparse.img printed %d bytes that differ from the file's %d", len(r.stdout), len(want))
	}
	f.cliFor(t).expect(exitUsage, "restore", "latest", "--stdout")
}

func testDiff(t *testing.T, f *e2eFixture) {
	r := f.cliFor(t).must("diff", f.ids[0], f.ids[1])
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		if i := strings.LastIndex(rest, " ("); i >= 0 {
			rest = rest[:i]
		}
		got[kind] = append(got[kind], rest)
	}
	want := map[string][]string{
		"+": {"docs/added.txt"},
		"-": {"notes from meeting.txt"},
		"M": {notesPath},
	}
	for kind, paths := range want {
		if !slices.Equal(got[kind], paths) {
			t.Errorf("diff: %q lines name %q, want %q:\n%s", kind, got[kind], paths, r)
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok && kind != "U" {
			t.Errorf("diff: unexpected %q lines:\n%s", kind, r)
		}
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("M %s (%d -> %d bytes)", notesPath, len(f.notes[0]), len(f.notes[1]))) {
		t.Errorf("diff does not give the sizes of %s:\n%s", notesPath, r)
	}
	// Between 2 and 3 only .bashrc changed in content.
	r = f.cliFor(t).must("diff", f.ids[1], f.ids[2])
	if !strings.Contains(r.stdout, "M .bashrc (") || strings.Contains(r.stdout, "docs/notes.md") {
		t.Errorf("diff %s %s:\n%s", f.ids[1], f.ids[2], r)
	}
	// A snapshot against itself shows nothing.
	if r := f.cliFor(t).must("diff", f.ids[2], "latest"); r.stdout != "" {
		t.Errorf("diff of a snapshot with itself:\n%s", r)
	}
}

func testWrongPassphrase(t *testing.T, f *e2eFixture) {
	wrong := f.cliFor(t).with("DVPC_PASSPHRASE", "not the passphrase").with("DVPC_NEW_PASSPHRASE", "another one")
	before := treeState(t, f.store)
	for _, args := range [][]string{
		{"log"},
		{"snapshot", f.home},
		{"restore", "latest", "--to", filepath.Join(t.TempDir(), "r")},
		{"verify", "--read-data"},
		{"key", "passwd"},
		{"cat", "manifest", "latest"},
	} {
		r := wrong.expect(exitPassphrase, args...)
		if !strings.Contains(r.stderr, "wrong passphrase") || !strings.Contains(r.stderr, "recovery code") {
			t.Errorf("the message does not say the passphrase is wrong:\n%s", r)
		}
		if r.stdout != "" {
			t.Errorf("printed something on stdout:\n%s", r)
		}
	}
	// The same with the passphrase in a file.
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	newCLI(t, f.store, "").with("DVPC_PASSPHRASE_FILE", pf).expect(exitPassphrase, "snapshot", f.home)
	requireSameState(t, "the store after wrong passphrases", before, treeState(t, f.store))
}

func testRecoveryCode(t *testing.T, f *e2eFixture) {
	_, d := f.scratch(t)
	code := f.codes[2]
	rc := d.with("DVPC_PASSPHRASE", code)
	r := rc.must("log")
	if !strings.Contains(r.stderr, "7 recovery codes remain") {
		t.Errorf("unlocking with a recovery code does not say 7 remain:\n%s", r)
	}
	if !strings.Contains(r.stdout, f.ids[2]) {
		t.Errorf("log with a recovery code does not list the snapshots:\n%s", r)
	}
	r = rc.expect(exitPassphrase, "log")
	if !strings.Contains(r.stderr, "recovery code 3 was already used on ") || !strings.Contains(r.stderr, "it no longer unlocks anything") {
		t.Errorf("a used recovery code is refused without saying why:\n%s", r)
	}
	// A code typed in lower case with spaces is the same code.
	rc2 := d.with("DVPC_PASSPHRASE", strings.ToLower(strings.ReplaceAll(f.codes[5], "-", " - ")))
	r = rc2.must("verify")
	if !strings.Contains(r.stderr, "6 recovery codes remain") {
		t.Errorf("second recovery code does not say 6 remain:\n%s", r)
	}
	// The passphrase still works, and burns nothing. The epoch the last
	// code started is known to the PC it was typed on: the passphrase's
	// first unlock starts another, and says so; the next says nothing.
	r = d.must("log")
	if strings.Contains(r.stderr, "unlocked with a recovery code") {
		t.Errorf("the passphrase is reported as a recovery code:\n%s", r)
	}
	if !strings.Contains(r.stderr, "which that PC never saw") {
		t.Errorf("the passphrase after a recovery code starts no new key epoch:\n%s", r)
	}
	r = d.must("log")
	if strings.Contains(r.stderr, "recovery") || strings.Contains(r.stderr, "epoch") {
		t.Errorf("a second passphrase unlock reports a recovery code or an epoch:\n%s", r)
	}
}

func testKeyPasswd(t *testing.T, f *e2eFixture) {
	_, d := f.scratch(t)
	const newPass = "a new passphrase for the store"
	r := d.with("DVPC_NEW_PASSPHRASE", newPass).must("key", "passwd")
	if !strings.Contains(r.stderr, "passphrase changed") {
		t.Errorf("key passwd does not confirm:\n%s", r)
	}
	r = d.expect(exitPassphrase, "log")
	if !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("old passphrase: %s", r)
	}
	nd := d.with("DVPC_PASSPHRASE", newPass)
	r = nd.must("log")
	for _, id := range f.ids {
		if !strings.Contains(r.stdout, id) {
			t.Errorf("log with the new passphrase lacks %s:\n%s", id, r)
		}
	}
	nd.must("verify", "--read-data")
	nd.requireRestores("latest", f.refs[2])
	// Recovery codes still open the store after a passphrase change.
	d.with("DVPC_PASSPHRASE", f.codes[0]).must("log")
}

func testRestoreNonEmpty(t *testing.T, f *e2eFixture) {
	dir := filepath.Join(t.TempDir(), "target")
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, filepath.Join(dir, "keep.txt"), []byte("mine\n"), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	writeFileAt(t, filepath.Join(dir, notesPath), []byte("local notes\n"), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	before := treeState(t, dir)
	r := f.cliFor(t).expect(exitError, "restore", "latest", "--to", dir)
	if !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "--overwrite") {
		t.Errorf("restore into a non-empty directory does not explain:\n%s", r)
	}
	requireSameState(t, "the non-empty restore target", before, treeState(t, dir))
	// Also with paths.
	f.cliFor(t).expect(exitError, "restore", "latest", notesPath, "--to", dir)
	requireSameState(t, "the non-empty restore target", before, treeState(t, dir))

	// --overwrite replaces what the snapshot holds and keeps the rest.
	f.cliFor(t).must("restore", "latest", "--to", dir, "--overwrite")
	got, err := os.ReadFile(filepath.Join(dir, notesPath))
	if err != nil || !bytes.Equal(got, f.notes[1]) {
		t.Errorf("after --overwrite, %s = %q, %v; want %q", notesPath, got, err, f.notes[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
		t.Errorf("--overwrite removed a file the snapshot does not hold: %v", err)
	}
}

// testCorruptPack damages one byte in the middle of a data pack and checks
// that verify finds it, that restoring a file stored in it fails naming it,
// and that files stored elsewhere still restore.
func testCorruptPack(t *testing.T, f *e2eFixture) {
	store, d := f.scratch(t)
	extra := filepath.Join(t.TempDir(), "extra")
	if err := os.Mkdir(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	// Snapshot A holds file1 only; its data goes into a pack of its own.
	randomFile(t, filepath.Join(extra, "file1.bin"), 1, 3<<20)
	idA := d.snapshot(extra)
	// Snapshot B adds file2, whose data goes into a new pack.
	file2 := randomFile(t, filepath.Join(extra, "file2.bin"), 2, 1<<20)
	idB := d.snapshot(extra)

	_, m3 := snapshotManifest(t, store, f.ids[2])
	_, mA := snapshotManifest(t, store, idA)
	_, mB := snapshotManifest(t, store, idB)
	old := map[v1.Hash]bool{}
	for _, l := range m3.Layers {
		old[l.Digest] = true
	}
	// A's new packs hold file1's data (about 3 MiB, in one pack or a few)
	// and its small trees; the biggest holds file1's data.
	var pack v1.Descriptor
	for _, l := range mA.Layers {
		if string(l.MediaType) == image.PackType && !old[l.Digest] && l.Size > pack.Size {
			pack = l
		}
	}
	if pack.Size < 256<<10 {
		t.Fatalf("snapshot %s has no new pack that can hold file1's data; layers: %+v", idA, mA.Layers)
	}
	if !slices.ContainsFunc(mB.Layers, func(l v1.Descriptor) bool { return l.Digest == pack.Digest }) {
		t.Fatalf("snapshot %s does not list file1's pack %s", idB, pack.Digest)
	}
	d.must("verify", "--read-data")
	flipByte(t, blobPath(store, pack.Digest), pack.Size/2)

	r := d.expect(exitIntegrity, "verify", "--read-data")
	if !strings.Contains(r.stdout, "PROBLEM") || !strings.Contains(r.stdout, pack.Digest.String()) {
		t.Errorf("verify --read-data does not name the damaged pack %s:\n%s", pack.Digest, r)
	}
	for _, id := range []string{idA, idB} {
		if !strings.Contains(r.stdout, id) {
			t.Errorf("verify --read-data does not say the damage affects snapshot %s:\n%s", id, r)
		}
	}
	for _, id := range f.ids {
		if strings.Contains(r.stdout, id) {
			t.Errorf("verify --read-data blames snapshot %s, which does not use the pack:\n%s", id, r)
		}
	}

	dir1 := filepath.Join(t.TempDir(), "r1")
	r = d.expect(exitPartial, "restore", idB, "file1.bin", "--to", dir1)
	if !strings.Contains(r.stderr, pack.Digest.String()) || !strings.Contains(r.stderr, "file1.bin") {
		t.Errorf("restoring file1 does not name the file and the damaged pack %s:\n%s", pack.Digest, r)
	}
	if _, err := os.Lstat(filepath.Join(dir1, "file1.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file that could not be restored was left in the target (%v)", err)
	}
	r = d.expect(exitIntegrity, "restore", idA, "file1.bin", "--stdout")
	if !strings.Contains(r.stderr, pack.Digest.String()) {
		t.Errorf("restore --stdout of file1 does not name the damaged pack:\n%s", r)
	}

	dir2 := filepath.Join(t.TempDir(), "r2")
	d.must("restore", idB, "file2.bin", "--to", dir2)
	got, err := os.ReadFile(filepath.Join(dir2, "file2.bin"))
	if err != nil || !bytes.Equal(got, file2) {
		t.Errorf("file2 restored from %s: %d bytes, %v; want its %d bytes", idB, len(got), err, len(file2))
	}
	// Snapshots that do not use the pack restore whole.
	d.requireRestores(f.ids[2], f.refs[2])
}

// testAlteredManifest rewrites the blob of snapshot 2's manifest in place.
func testAlteredManifest(t *testing.T, f *e2eFixture) {
	store, d := f.scratch(t)
	ref, _ := snapshotManifest(t, store, f.ids[1])
	p := blobPath(store, ref.Desc.Digest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(b, []byte(`"dev.dvpc.seq":"2"`), []byte(`"dev.dvpc.seq":"9"`), 1)
	if bytes.Equal(altered, b) {
		t.Fatalf("manifest of %s has no seq annotation to alter:\n%s", f.ids[1], b)
	}
	if err := os.WriteFile(p, altered, 0o600); err != nil {
		t.Fatal(err)
	}
	r := d.expect(exitIntegrity, "verify")
	if !strings.Contains(r.stdout, ref.Desc.Digest.String()) {
		t.Errorf("verify does not name the altered manifest %s:\n%s", ref.Desc.Digest, r)
	}
	d.expect(exitIntegrity, "verify", "--read-data")
	r = d.must("log")
	if !strings.Contains(r.stderr, "ignoring") || !strings.Contains(r.stderr, ref.Name) {
		t.Errorf("log does not say it ignores %s:\n%s", ref.Name, r)
	}
	if strings.Contains(r.stdout, f.ids[1]) || !strings.Contains(r.stdout, f.ids[0]) || !strings.Contains(r.stdout, f.ids[2]) {
		t.Errorf("log must list %s and %s but not %s:\n%s", f.ids[0], f.ids[2], f.ids[1], r)
	}
	d.expect(exitNotFound, "restore", f.ids[1], "--to", filepath.Join(t.TempDir(), "r"))
	// The others still restore.
	d.requireRestores(f.ids[2], f.refs[2])
}

// replaceSignature points the signature tag of a snapshot at a new
// signature manifest whose one layer is sig. The manifest has the form dvpc
// writes; only the signature differs.
func replaceSignature(t testing.TB, store string, manifest v1.Hash, sigManifest []byte) {
	t.Helper()
	idx, _ := readStoreIndex(t, store)
	tag := "sha256-" + manifest.Hex + ".sig"
	found := false
	for i, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			idx.Manifests[i].Digest = putBlob(t, store, sigManifest)
			idx.Manifests[i].Size = int64(len(sigManifest))
			found = true
		}
	}
	if !found {
		t.Fatalf("no tag %s in %s", tag, store)
	}
	writeStoreIndex(t, store, idx)
}

// requireRefused checks that the store refuses snapshot 3 as badly signed
// and uses the others.
func requireRefused(t *testing.T, f *e2eFixture, d *dvpcCLI) {
	t.Helper()
	r := d.must("log")
	if !strings.Contains(r.stderr, "ignoring") || !strings.Contains(r.stderr, f.ids[2]) || !strings.Contains(r.stderr, "bad signature") {
		t.Errorf("log does not say it ignores %s for its signature:\n%s", f.ids[2], r)
	}
	if strings.Contains(r.stdout, f.ids[2]) {
		t.Errorf("log lists the badly signed snapshot %s:\n%s", f.ids[2], r)
	}
	r = d.expect(exitIntegrity, "verify")
	if !strings.Contains(r.stdout, "bad signature") {
		t.Errorf("verify does not report the bad signature:\n%s", r)
	}
	d.expect(exitNotFound, "restore", f.ids[2], "--to", filepath.Join(t.TempDir(), "r"))
	d.expect(exitNotFound, "cat", "manifest", f.ids[2])
	// "latest" is now the newest well-signed snapshot.
	r = d.must("restore", "latest", ".bashrc", "--stdout")
	want, err := os.ReadFile(filepath.Join(f.refs[1], ".bashrc"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want) {
		t.Errorf("latest .bashrc is %q, want snapshot %s's %q", r.stdout, f.ids[1], want)
	}
}

// testForeignStoreSignature swaps in a genuine signature made by another
// store's key: the signature of that store's snapshot of the same directory.
func testForeignStoreSignature(t *testing.T, f *e2eFixture) {
	store, d := f.scratch(t)
	other := filepath.Join(t.TempDir(), "other")
	od := newCLI(t, other, "the other store's passphrase")
	od.must("init", "--argon2-memory", "8")
	oid := od.snapshot(f.home)
	oref, _ := snapshotManifest(t, other, oid)
	_, orefs := readStoreIndex(t, other)
	osig := findRef(t, orefs, "sha256-"+oref.Desc.Digest.Hex+".sig")
	sigManifest := readBlob(t, other, osig.Desc.Digest)
	var sm v1.Manifest
	if err := json.Unmarshal(sigManifest, &sm); err != nil {
		t.Fatal(err)
	}
	// Bring the other store's signature blobs over, then point snapshot 3's
	// signature tag at the other store's signature manifest.
	for _, l := range append(sm.Layers, sm.Config) {
		putBlob(t, store, readBlob(t, other, l.Digest))
	}
	ref3, _ := snapshotManifest(t, store, f.ids[2])
	replaceSignature(t, store, ref3.Desc.Digest, sigManifest)
	requireRefused(t, f, d)
}

// testForeignKeySignature swaps in a valid SSHSIG signature of snapshot 3's
// exact manifest bytes, made with a key that is not the store's.
func testForeignKeySignature(t *testing.T, f *e2eFixture) {
	store, d := f.scratch(t)
	ref3, _ := snapshotManifest(t, store, f.ids[2])
	raw := readBlob(t, store, ref3.Desc.Digest)
	seed := sha256.Sum256([]byte("a key that is not the store's"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	sig := signSSHSIG(t, priv, raw)
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := image.VerifySSHSIG(string(ssh.MarshalAuthorizedKey(pub)), raw, sig); err != nil {
		t.Fatalf("the forged signature does not even verify under its own key: %v", err)
	}
	// The store's own signature manifest, with the forged signature as its
	// layer.
	_, refs := readStoreIndex(t, store)
	sref := findRef(t, refs, "sha256-"+ref3.Desc.Digest.Hex+".sig")
	var sm map[string]any
	if err := json.Unmarshal(readBlob(t, store, sref.Desc.Digest), &sm); err != nil {
		t.Fatal(err)
	}
	layers := sm["layers"].([]any)
	layer := layers[0].(map[string]any)
	layer["digest"] = putBlob(t, store, sig).String()
	layer["size"] = len(sig)
	b, err := json.Marshal(sm)
	if err != nil {
		t.Fatal(err)
	}
	replaceSignature(t, store, ref3.Desc.Digest, b)
	requireRefused(t, f, d)
}
