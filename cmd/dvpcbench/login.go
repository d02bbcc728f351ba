//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
)

// The login of a person on a PC that is not theirs is measured against a
// restore of the same snapshot from the full store. Right after the
// initial snapshot, dvpc media iso writes the store, which then holds that
// snapshot alone, to out/login.iso (the "login-iso" step, in no row): last
// week's disc. After the mirror steps, the store, with both snapshots, is
// pushed (untimed) to registry 0, which a counting proxy of the bench
// fronts; then, one after the other:
//
//   - "login-restore": dvpc restore of the incremental snapshot, by its
//     ID, from the full store into out/login-restore-dvpc;
//   - "login": on a strange PC (its own HOME and XDG directories, and a
//     --store that does not exist yet, so that login creates an ephemeral
//     cache), dvpc --json login --from out/login.iso --mirror PROXY/REPO
//     --to out/login-dvpc. The directory is checked against the home
//     (untimed), and the bytes every response of the registry carried
//     through the proxy during the login are its net bytes, printed
//     against the whole restic repository: what restic downloads to
//     restore the same home from a remote repository.
//
// The login takes the keys from the run's unlock agent, as every other
// dvpc figure does; the unlock row is what typing the passphrase adds.

// loginRegistry is the registry the login reads, through the proxy.
const loginRegistry = 0

func (b *bench) loginISO() string  { return b.path("out", "login.iso") }
func (b *bench) strangePC() string { return b.path("strange") }

// strangeStore is the store directory of the strange PC: its cache of the
// person's store, made by the login.
func (b *bench) strangeStore() string { return b.path("strange", "store") }

// loginDir is where the login materialises the home: the out directory of
// the login step.
func (b *bench) loginDir() string { return b.path("out", "login-dvpc") }

// strangeEnv is the environment of a dvpc command on the strange PC.
func (b *bench) strangeEnv() []string {
	pc := b.strangePC()
	return []string{"HOME=" + pc + "/home", "XDG_DATA_HOME=" + pc + "/share", "XDG_CONFIG_HOME=" + pc + "/config"}
}

// strangeCmd is a dvpc command on the strange PC, with its session store.
func (b *bench) strangeCmd(t *tool, args ...string) *exec.Cmd {
	c := exec.Command(t.bin, append([]string{"--store", b.strangeStore()}, args...)...)
	c.Env = b.strangeEnv()
	return c
}

// countingProxy forwards to a registry and counts the bytes of the
// response bodies it passes on: what a client fetched over the net.
type countingProxy struct {
	addr  string
	srv   *http.Server
	bytes atomic.Int64
}

func startCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.srv = &http.Server{Handler: rp}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *countingProxy) close() { p.srv.Close() }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// startProxy starts the registries and the proxy in front of the login's
// registry, once.
func (b *bench) startProxy() error {
	if err := b.startRegistries(); err != nil {
		return err
	}
	if b.proxy != nil {
		return nil
	}
	p, err := startCountingProxy(b.registries[loginRegistry].addr)
	if err != nil {
		return fmt.Errorf("counting proxy: %w", err)
	}
	b.proxy = p
	return nil
}

// proxiedMirror is the login's mirror as the strange PC names it: through
// the proxy.
func (b *bench) proxiedMirror() string { return b.proxy.addr + "/" + registryRepo }

// snapshotID is the ID of the snapshot a step of dvpc made (its --json
// report), or "".
func snapshotID(tr *toolRun, step string) string {
	r := tr.Steps[step]
	if r == nil || len(r.Report) == 0 {
		return ""
	}
	var rep struct {
		ID string `json:"id"`
	}
	json.Unmarshal(r.Report, &rep)
	return rep.ID
}

// dvpcLoginCmds are dvpc's commands of the login steps.
func dvpcLoginCmds(t *tool) map[string]func(*bench, string) (*exec.Cmd, error) {
	return map[string]func(*bench, string) (*exec.Cmd, error){
		// Last week's disc: the store with the initial snapshot alone.
		"login-iso": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := os.Remove(b.loginISO()); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			return exec.Command(t.bin, "--store", t.repo, "media", "iso", "--out", b.loginISO(), "--capacity", "bd-dl", "--no-clients"), nil
		},
		"login-restore": func(b *bench, out string) (*exec.Cmd, error) {
			return exec.Command(t.bin, "--store", t.repo, "restore", cmpOr(snapshotID(b.toolRun("dvpc"), "incremental"), "latest"), "--to", out), nil
		},
		"login": func(b *bench, out string) (*exec.Cmd, error) {
			if err := b.startProxy(); err != nil {
				return nil, err
			}
			// The mirror holds both snapshots (after pull-week, nothing
			// is left to send).
			_, drop := push4Mirrors()
			if err := b.setMirrors(t, "login", append(drop, "r0", "r1"), []int{loginRegistry}); err != nil {
				return nil, err
			}
			if err := b.untimedPush(t, "login-push", 1); err != nil {
				return nil, err
			}
			if err := os.RemoveAll(b.strangePC()); err != nil {
				return nil, err
			}
			for _, d := range []string{"home", "share", "config"} {
				if err := os.MkdirAll(b.path("strange", d), 0o700); err != nil {
					return nil, err
				}
			}
			b.proxy.bytes.Store(0)
			return b.strangeCmd(t, "--json", "login", "--from", b.loginISO(), "--mirror", b.proxiedMirror(), "--to", out), nil
		},
	}
}

// loginReport is the output of dvpc login --json.
type loginReport struct {
	Snapshot  string   `json:"snapshot"`
	Dir       string   `json:"dir"`
	BadPlaces []string `json:"bad_places"`
}

// afterLogin records the bytes the proxy passed on, checks the output and
// compares the directory with the home.
func afterLogin(b *bench, s *step, t *tool, tr *toolRun, out string) string {
	r := tr.Steps[s.name]
	r.NetBytes = b.proxy.bytes.Load()
	r.Report = json.RawMessage(trimSpace(r.stdout))
	if why := checkLogin(r.stdout, snapshotID(tr, "incremental"), out); why != "" {
		r.Error = why
		return ""
	}
	return checkRestore(b, s, t, tr, out)
}

// checkLogin says what is wrong with the output of dvpc login --json that
// should have materialised snapshot id in dir, or "".
func checkLogin(out []byte, id, dir string) string {
	var rep loginReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return "login --json: " + err.Error()
	}
	switch {
	case len(rep.BadPlaces) > 0:
		return fmt.Sprintf("bad places: %v", rep.BadPlaces)
	case rep.Dir != dir:
		return fmt.Sprintf("logged in to %s, want %s", rep.Dir, dir)
	case id != "" && !strings.HasPrefix(rep.Snapshot, id) && !strings.HasPrefix(id, rep.Snapshot):
		return fmt.Sprintf("logged in to snapshot %s, want the incremental snapshot %s", rep.Snapshot, id)
	case rep.Snapshot == "":
		return "login --json names no snapshot"
	}
	return ""
}

// loginNet is the bytes the login fetched from the mirror for dvpc, and
// for restic its whole repository after the incremental snapshot: what a
// restore from a remote repository downloads.
func loginNet(b *bench, tr *toolRun) cell {
	if tr == nil {
		return cell{why: "-"}
	}
	switch tr.Name {
	case "dvpc":
		return stepCell("login", func(r *result) float64 { return float64(r.NetBytes) / mib })(b, tr)
	case "restic":
		c := stepCell("incremental", seconds)(b, tr)
		if !c.ok() {
			return c
		}
		if n, ok := tr.RepoBytes["incremental"]; ok {
			return cell{v: float64(n) / mib}
		}
		return cell{why: "failed"}
	}
	return cell{why: "-"}
}

// constBound is a fixed bound, named who.
func constBound(v float64, who string) func(b *bench) (cell, string) {
	return func(*bench) (cell, string) { return cell{v: v}, who }
}
