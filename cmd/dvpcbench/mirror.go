//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// dvpc's mirrors are measured against local registries (Debian's
// docker-registry), each on a free loopback port with its own storage
// under WORK/registries. Registry 0 serves the week's pull: right after
// the initial snapshot (the "pull-initial" step) the store is pushed to
// it, untimed, and pulled into WORK/pulled, the store of a second PC;
// after the ISO stage the store is pushed to it again, untimed, and the
// pull of the week into WORK/pulled is timed ("pull-week"), its
// bytes_fetched compared with the incremental snapshot's bytes_new.
// Registries 1 to 5 are empty until the push steps: "push-1" pushes the
// store, with both snapshots, to registry 1 alone, "push-4" to registries
// 2 to 5, so that both pushes send everything.

// registryMirrors is how many registries the push-4 step pushes to.
const registryMirrors = 4

// nRegistries is registry 0, registry 1 and the registryMirrors others.
const nRegistries = 2 + registryMirrors

// registryRepo is the repository path of the store on every registry.
const registryRepo = "dvpcbench/store"

type registry struct {
	addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *os.File
}

// mirrorURL is the mirror of registry i, as dvpc mirror add takes it.
func (b *bench) mirrorURL(i int) string { return b.registries[i].addr + "/" + registryRepo }

func (b *bench) pulledStore() string { return b.path("pulled") }

// registryConfig is docker-registry's configuration.
func registryConfig(root, addr string) string {
	return fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: %q}, delete: {enabled: true}}
http: {addr: %q, secret: dvpcbench}
`, root, addr)
}

// startRegistries starts the registries once; later calls return the
// first call's error.
func (b *bench) startRegistries() error {
	if b.registries != nil || b.registryErr != nil {
		return b.registryErr
	}
	b.registries = []*registry{}
	for i := range nRegistries {
		var err error
		for try := 0; try < 3; try++ { // a free port may be taken before the registry binds it
			var r *registry
			if r, err = b.startRegistry(i); err == nil {
				b.registries = append(b.registries, r)
				break
			}
		}
		if err != nil {
			b.registryErr = fmt.Errorf("registry %d: %w", i, err)
			b.stopRegistries()
			return b.registryErr
		}
	}
	b.logf("%-12s %-7s %d docker-registry on 127.0.0.1", "registries", "", nRegistries)
	return nil
}

func (b *bench) startRegistry(i int) (*registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	dir := b.path("registries", fmt.Sprint(i))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, []byte(registryConfig(filepath.Join(dir, "data"), addr)), 0o644); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(b.path("logs", fmt.Sprintf("registry-%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c := exec.Command("docker-registry", "serve", conf)
	c.Stdout, c.Stderr = lf, lf
	if err := c.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	r := &registry{addr: addr, cmd: c, log: lf}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			lf.Close()
			return nil, fmt.Errorf("docker-registry exited: %v (see %s)", err, lf.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := client.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				go func() { <-exited; lf.Close() }()
				return r, nil
			}
		}
	}
	c.Process.Kill()
	<-exited
	lf.Close()
	return nil, errors.New("docker-registry did not answer GET /v2/ within 30 s")
}

// stopRegistries kills the registries it started, and closes the login's
// proxy.
func (b *bench) stopRegistries() {
	if b.proxy != nil {
		b.proxy.close()
		b.proxy = nil
	}
	for _, r := range b.registries {
		r.cmd.Process.Kill()
	}
	b.registries = nil
}

// dvpcPrep runs a dvpc command untimed, before a measured one, with its
// output in logs/NAME.log.
func (b *bench) dvpcPrep(t *tool, name string, args ...string) (*result, error) {
	c := exec.Command(t.bin, append([]string{"--store", t.repo}, args...)...)
	c.Env = append(c.Env, t.env...)
	return b.exec(name, c, nil)
}

// pushReport is one mirror's object of dvpc push --json.
type pushReport struct {
	Mirror        string `json:"mirror"`
	URL           string `json:"url"`
	BlobsUploaded int    `json:"blobs_uploaded"`
	BytesUploaded int64  `json:"bytes_uploaded"`
	BlobsSkipped  int    `json:"blobs_skipped"`
	Manifests     int    `json:"manifests"`
	Error         string `json:"error"`
}

// checkPush says what is wrong with the output of dvpc push --json to
// want mirrors, or "".
func checkPush(out []byte, want int) string {
	var reps []pushReport
	if err := json.Unmarshal(out, &reps); err != nil {
		return "push --json: " + err.Error()
	}
	if len(reps) != want {
		return fmt.Sprintf("push --json: %d mirrors, want %d", len(reps), want)
	}
	for _, r := range reps {
		if r.Error != "" {
			return "mirror " + cmpOr(r.Mirror, r.URL) + ": " + r.Error
		}
	}
	return ""
}

// pullReport is the output of dvpc pull --json.
type pullReport struct {
	Snapshots    []json.RawMessage `json:"snapshots"`
	BlobsFetched int               `json:"blobs_fetched"`
	BytesFetched int64             `json:"bytes_fetched"`
	BlobsPresent int               `json:"blobs_present"`
	BadMirrors   []string          `json:"bad_mirrors"`
}

// checkPull says what is wrong with the output of dvpc pull --json that
// should have brought one snapshot, or "".
func checkPull(out []byte) string {
	var rep pullReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return "pull --json: " + err.Error()
	}
	switch {
	case len(rep.BadMirrors) > 0:
		return fmt.Sprintf("bad mirrors: %v", rep.BadMirrors)
	case len(rep.Snapshots) != 1:
		return fmt.Sprintf("pulled %d snapshots, want 1", len(rep.Snapshots))
	}
	return ""
}

// setMirrors removes dvpc's mirrors named in drop (they may be absent)
// and adds registries regs, named rN, untimed.
func (b *bench) setMirrors(t *tool, step string, drop []string, regs []int) error {
	for _, n := range drop {
		b.dvpcPrep(t, step+"-remove-"+n, "mirror", "remove", n) // absent when an earlier step failed
	}
	for _, i := range regs {
		if _, err := b.dvpcPrep(t, fmt.Sprintf("%s-add-r%d", step, i), "mirror", "add", b.mirrorURL(i), "--name", fmt.Sprintf("r%d", i)); err != nil {
			return fmt.Errorf("mirror add: %w", err)
		}
	}
	return nil
}

// untimedPush pushes the store to its mirrors, which must be n.
func (b *bench) untimedPush(t *tool, name string, n int) error {
	r, err := b.dvpcPrep(t, name, "--json", "push")
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if why := checkPush(r.stdout, n); why != "" {
		return errors.New(why)
	}
	return nil
}

// push1Registry is the registry of the push-1 step.
const push1Registry = 1

// push4Registries are the registries of the push-4 step.
func push4Registries() []int {
	regs, _ := push4Mirrors()
	return regs
}

// push4Mirrors are the registries of the push-4 step and their names as
// dvpc's mirrors.
func push4Mirrors() (regs []int, names []string) {
	for i := 2; i < 2+registryMirrors; i++ {
		regs, names = append(regs, i), append(names, fmt.Sprintf("r%d", i))
	}
	return regs, names
}

// dvpcMirrorCmds are dvpc's commands of the mirror steps. Each sets up
// the mirrors, untimed, and returns the measured command.
func dvpcMirrorCmds(t *tool) map[string]func(*bench, string) (*exec.Cmd, error) {
	cmd := func(args ...string) *exec.Cmd {
		return exec.Command(t.bin, append([]string{"--store", t.repo}, args...)...)
	}
	return map[string]func(*bench, string) (*exec.Cmd, error){
		// Untimed set-up of the week's pull: WORK/pulled gets the
		// initial snapshot through registry 0. The mirror is removed
		// again, so that the incremental snapshot does not name it.
		"pull-initial": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := b.startRegistries(); err != nil {
				return nil, err
			}
			if err := b.setMirrors(t, "pull-initial", nil, []int{0}); err != nil {
				return nil, err
			}
			err := b.untimedPush(t, "pull-initial-push", 1)
			if _, rerr := b.dvpcPrep(t, "pull-initial-remove-r0", "mirror", "remove", "r0"); err == nil && rerr != nil {
				err = fmt.Errorf("mirror remove: %w", rerr)
			}
			if err != nil {
				return nil, err
			}
			os.RemoveAll(b.pulledStore())
			return exec.Command(t.bin, "--store", b.pulledStore(), "--json", "pull", b.mirrorURL(0)), nil
		},
		"push-1": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := b.startRegistries(); err != nil {
				return nil, err
			}
			if err := b.setMirrors(t, "push-1", nil, []int{push1Registry}); err != nil {
				return nil, err
			}
			return cmd("--json", "push"), nil
		},
		"push-4": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := b.startRegistries(); err != nil {
				return nil, err
			}
			regs, _ := push4Mirrors()
			if err := b.setMirrors(t, "push-4", []string{"r1"}, regs); err != nil {
				return nil, err
			}
			return cmd("--json", "push"), nil
		},
		"pull-week": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := b.startRegistries(); err != nil {
				return nil, err
			}
			_, drop := push4Mirrors()
			if err := b.setMirrors(t, "pull-week", append(drop, "r1"), []int{0}); err != nil {
				return nil, err
			}
			if err := b.untimedPush(t, "pull-week-push", 1); err != nil {
				return nil, err
			}
			return exec.Command(t.bin, "--store", b.pulledStore(), "--json", "pull", b.mirrorURL(0)), nil
		},
	}
}

// afterPush checks the output of a push step and keeps it.
func afterPush(want int) func(b *bench, s *step, t *tool, tr *toolRun, out string) string {
	return func(b *bench, s *step, t *tool, tr *toolRun, _ string) string {
		r := tr.Steps[s.name]
		r.Report = json.RawMessage(trimSpace(r.stdout))
		if why := checkPush(r.stdout, want); why != "" {
			r.Error = why
		}
		return ""
	}
}

// afterPull checks the output of a pull step and keeps it. After the
// initial one it records the store's size again: setting up the mirror
// wrote to it, and the incremental snapshot's bytes are counted from
// there.
func afterPull(b *bench, s *step, t *tool, tr *toolRun, _ string) string {
	r := tr.Steps[s.name]
	r.Report = json.RawMessage(trimSpace(r.stdout))
	if why := checkPull(r.stdout); why != "" {
		r.Error = why
	}
	if s.name == "pull-initial" {
		return afterSnapshot(b, s, t, tr, "")
	}
	return ""
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// reportCell is a figure taken from the --json output a step kept.
func reportCell(step string, f func(raw json.RawMessage) (float64, bool)) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		c := stepCell(step, seconds)(b, tr)
		if !c.ok() {
			return c
		}
		if len(tr.Steps[step].Report) == 0 {
			return cell{why: "-"}
		}
		v, ok := f(tr.Steps[step].Report)
		if !ok {
			return cell{why: "failed"}
		}
		return cell{v: v}
	}
}

// jsonMiB is the integer field of a JSON object in MiB.
func jsonMiB(field string) func(raw json.RawMessage) (float64, bool) {
	return func(raw json.RawMessage) (float64, bool) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return 0, false
		}
		var n int64
		if v, ok := m[field]; !ok || json.Unmarshal(v, &n) != nil {
			return 0, false
		}
		return float64(n) / mib, true
	}
}

// quotient is the figure a over the figure c of the same tool.
func quotient(a, c func(b *bench, tr *toolRun) cell) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		x, y := a(b, tr), c(b, tr)
		switch {
		case !x.ok():
			return x
		case !y.ok():
			return y
		case y.v == 0:
			return cell{why: "-"}
		}
		return cell{v: x.v / y.v}
	}
}

// The registries run on the same CPUs as dvpc: every byte a push sends
// is hashed and written by each registry it goes to, so a push to four
// registries needs about four times the registries' CPU time of a push to
// one. On N CPUs a push can take no less than the CPU time of dvpc and of
// its registries over N: the CPU floor, printed with the limits.

// registriesCPU is the CPU time the registries of a step spent during its
// command (RegistriesCPU).
func registriesCPU(step string) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		c := stepCell(step, seconds)(b, tr)
		if !c.ok() {
			return c
		}
		if v := tr.Steps[step].RegistriesCPU; v != nil {
			return cell{v: *v}
		}
		return cell{why: "failed"}
	}
}

// cpuFloor is the least wall time of a step on this machine: the CPU time
// of the tool and of the step's registries over the number of CPUs.
func cpuFloor(step string) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		c := registriesCPU(step)(b, tr)
		if !c.ok() {
			return c
		}
		r := tr.Steps[step]
		return cell{v: (c.v + r.UserS + r.SysS) / float64(b.cpus)}
	}
}

var (
	push4Floor       = cpuFloor("push-4")
	push4FloorVsPush = quotient(push4Floor, stepCell("push-1", seconds))
)

// push4FloorText is the limit line of the CPU floor of the push-4 step.
func (b *bench) push4FloorText() string {
	tr := b.toolRun("dvpc")
	floor := push4Floor(b, tr)
	switch floor.why {
	case "":
	case "-":
		return "not run"
	default:
		return "failed"
	}
	r := tr.Steps["push-4"]
	s := fmt.Sprintf("%7.2f s", floor.v) // in the column of the limits' times
	if q := push4FloorVsPush(b, tr); q.ok() {
		s += fmt.Sprintf(" = %.1f× push to 1", q.v)
	}
	return s + fmt.Sprintf(" (registries used %.1f s of CPU and dvpc %.1f s, on %d cores)",
		*r.RegistriesCPU, r.UserS+r.SysS, b.cpus)
}

// push4FloorNote explains a missed push-4 aim whose bound, in seconds, is
// below the machine's CPU floor, or is "".
func (b *bench) push4FloorNote(bound float64) string {
	tr := b.toolRun("dvpc")
	floor := push4Floor(b, tr)
	if !floor.ok() || floor.v <= bound {
		return ""
	}
	s := fmt.Sprintf("the machine's CPU floor, %.2f s", floor.v)
	if q := push4FloorVsPush(b, tr); q.ok() {
		s += fmt.Sprintf(" = %.1f× push to 1", q.v)
	}
	return s + ", is above the aim"
}
