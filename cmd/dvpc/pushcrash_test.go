package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/internal/regtest"
)

// pushResult is one mirror's entry in `dvpc --json push`.
type pushResult struct {
	Mirror        string `json:"mirror"`
	BlobsUploaded int    `json:"blobs_uploaded"`
	BytesUploaded int64  `json:"bytes_uploaded"`
	BlobsSkipped  int    `json:"blobs_skipped"`
	Manifests     int    `json:"manifests"`
	Error         string `json:"error"`
}

func parsePush(t *testing.T, r result) pushResult {
	t.Helper()
	var res []pushResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res) != 1 || res[0].Error != "" {
		t.Fatalf("push printed %+v (%v)\n%s", res, err, r)
	}
	return res[0]
}

// regClient talks to one repository of a registry directly.
type regClient struct {
	t    *testing.T
	base string // http://host:port/v2/repo
}

func (c regClient) do(method, path, accept string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, c.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, c.base+path, err)
	}
	return resp.StatusCode, b
}

func (c regClient) hasBlob(d string) bool { c.t.Helper(); return c.blob(d, false) }

// holdsBlob is hasBlob for a blob no tag needs yet: one whose upload a kill
// cut off between its link and its data, which the registry answers 500
// for, is not held (the next push sends it again).
func (c regClient) holdsBlob(d string) bool { c.t.Helper(); return c.blob(d, true) }

func (c regClient) blob(d string, tornIsAbsent bool) bool {
	c.t.Helper()
	code, _ := c.do(http.MethodHead, "/blobs/"+d, "")
	switch {
	case code == http.StatusOK:
		return true
	case code == http.StatusNotFound, code == http.StatusInternalServerError && tornIsAbsent:
		return false
	}
	c.t.Fatalf("HEAD blob %s: status %d", d, code)
	return false
}

func (c regClient) tags() []string {
	c.t.Helper()
	code, b := c.do(http.MethodGet, "/tags/list", "")
	if code == http.StatusNotFound {
		return nil // no repository yet
	}
	var page struct {
		Tags []string `json:"tags"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &page) != nil {
		c.t.Fatalf("tags/list: %d %s", code, b)
	}
	return page.Tags
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

var sigTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.sig$`)

// requireConsistent checks that every tag of the repository names a manifest
// whose config and layers are all there, and that every signature tag signs
// a manifest that is there. It returns the number of tags. With torn set,
// a tag the registry lists but answers 500 or 404 for is allowed: a manifest
// PUT cut off by the kill can leave the registry's own tag record half
// written (the tag's directory without its link), which the next push writes
// again (checked without torn after the rerun).
func (c regClient) requireConsistent(what string, torn bool) int {
	c.t.Helper()
	tags := c.tags()
	for _, tag := range tags {
		code, b := c.do(http.MethodGet, "/manifests/"+tag, ociManifest)
		if torn && (code >= 500 || code == http.StatusNotFound) {
			c.t.Logf("%s: tag %s torn by the interrupted write (status %d)", what, tag, code)
			continue
		}
		if code != http.StatusOK {
			c.t.Fatalf("%s: tag %s: GET manifest: status %d %s", what, tag, code, b)
		}
		var m v1.Manifest
		if err := json.Unmarshal(b, &m); err != nil || m.SchemaVersion != 2 {
			c.t.Fatalf("%s: tag %s: manifest %v: %s", what, tag, err, b)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !c.hasBlob(d.Digest.String()) {
				c.t.Fatalf("%s: tag %s names manifest whose blob %s is missing", what, tag, d.Digest)
			}
		}
		if sm := sigTag.FindStringSubmatch(tag); sm != nil {
			if code, _ := c.do(http.MethodGet, "/manifests/sha256:"+sm[1], ociManifest); code != http.StatusOK {
				c.t.Fatalf("%s: signature tag %s is there but the manifest it signs is not (status %d)", what, tag, code)
			}
		}
	}
	return len(tags)
}

// presentBytes sums the sizes of the store's blobs, other than the tagged
// manifests, that the registry holds; it also returns how many.
func (c regClient) presentBytes(store string) (int64, int) {
	c.t.Helper()
	_, refs := readStoreIndex(c.t, store)
	manifests := map[string]bool{}
	for _, r := range refs {
		manifests[r.Desc.Digest.Hex] = true
	}
	ents, err := os.ReadDir(filepath.Join(store, "blobs", "sha256"))
	if err != nil {
		c.t.Fatal(err)
	}
	var n int64
	var k int
	for _, e := range ents {
		if manifests[e.Name()] {
			continue
		}
		if c.holdsBlob("sha256:" + e.Name()) {
			fi, err := e.Info()
			if err != nil {
				c.t.Fatal(err)
			}
			n += fi.Size()
			k++
		}
	}
	return n, k
}

// wipe empties a registry, as a fresh mirror.
func wipe(t *testing.T, reg *regtest.Registry) {
	t.Helper()
	reg.Stop()
	if err := os.RemoveAll(reg.Storage()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(reg.Storage(), 0o755); err != nil {
		t.Fatal(err)
	}
	reg.Restart(t)
}

// uploadsDir is where a registry keeps the uploads under way to the
// repository dvpc/home: each blob upload starts as a directory there, which
// the registry removes when the upload completes and keeps when it is cut
// off.
func uploadsDir(reg *regtest.Registry) string {
	return filepath.Join(reg.Storage(), "docker", "registry", "v2", "repositories", "dvpc", "home", "_uploads")
}

// TestPushCrash kills `dvpc push` at seeded random moments, most of them
// while it uploads (asserted: a majority of the kills leave an unfinished
// upload, or new blobs or tags, on a mirror the push had not completed).
// After each kill
// the registry names no manifest whose blobs are missing and no signature
// whose manifest is missing; the rerun uploads only what was not committed
// (its bytes plus the bytes already there never exceed those of a full
// push, and are fewer when anything was there); a push after a completed
// one uploads nothing; and a new store pulled from the mirror restores the
// home identically.
func TestPushCrash(t *testing.T) {
	regs := regtest.StartN(t, 2)
	reg, measure := regs[0], regs[1]
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	store := filepath.Join(dir, "store")
	cli := newCLI(t, store, "push crash passphrase")
	cli.must("init", "--argon2-memory", "8")
	// About 40 MB of incompressible data over three snapshots.
	for i, size := range []int{16 << 20, 12 << 20, 12 << 20} {
		randomFile(t, filepath.Join(home, "docs", fmt.Sprintf("data%d.bin", i)), uint64(100+i), size)
		cli.snapshot(home)
	}

	// One uninterrupted push, to a separate registry, sets the scale: how
	// long it takes, when its first upload starts, and how many tags a
	// complete push leaves.
	cli.must("mirror", "add", measure.Addr()+"/dvpc/home", "--name", "measure")
	var full pushResult
	pushTime, uploadAt := watchRun(dirsChanged(uploadsDir(measure)), func() { full = parsePush(t, cli.must("--json", "push")) })
	if full.BytesUploaded < 40<<20 || full.BlobsUploaded == 0 {
		t.Fatalf("full push: %+v", full)
	}
	if uploadAt < 0 {
		t.Fatalf("the full push left no trace in %s", uploadsDir(measure))
	}
	uploadSpan := max(pushTime-uploadAt, time.Millisecond)
	fullTags := len(regClient{t: t, base: measure.URL() + "/v2/dvpc/home"}.tags())
	if again := parsePush(t, cli.must("--json", "push")); again.BytesUploaded != 0 || again.BlobsUploaded != 0 || again.Manifests != 0 {
		t.Fatalf("a push after a completed one sent %+v", again)
	}
	cli.must("mirror", "remove", "measure")
	t.Logf("full push: %+v in %v, uploading from %v on; %d tags", full, pushTime, uploadAt, fullTags)

	url := reg.Addr() + "/dvpc/home"
	cli.must("mirror", "add", url, "--name", "crashy")
	rc := regClient{t: t, base: reg.URL() + "/v2/dvpc/home"}
	rng := rand.New(rand.NewPCG(20261125, 5))
	killedWithData, kills, midWrite := 0, 0, 0
	for i := range 5 {
		if i > 0 {
			wipe(t, reg)
		}
		// Two kills in a row: the second push resumes the first. Four
		// kills in five come at a random moment of the uploads: after
		// the first one starts, within two thirds of the time the
		// measured push took to upload what is still missing. The fifth
		// comes at a random moment of the whole run.
		for k := range 2 {
			kills++
			present, _ := rc.presentBytes(store)
			tagsBefore := len(rc.tags())
			upBefore := listNames(t, uploadsDir(reg))
			var started func() bool
			var delay time.Duration
			from := "the start"
			if kills%5 == 0 {
				delay = time.Duration(rng.Int64N(int64(pushTime) + 1))
			} else {
				left := float64(full.BytesUploaded-present) / float64(full.BytesUploaded)
				delay = time.Duration(rng.Int64N(int64(float64(uploadSpan)*left*2/3) + 1))
				started, from = dirsChanged(uploadsDir(reg)), "the first upload"
			}
			r, killed := cli.runKilledAfter(started, delay, "--json", "push")
			what := fmt.Sprintf("round %d, kill %d %v after %s (killed %v)", i, k, delay, from, killed)
			if !killed {
				if r.code != 0 {
					t.Fatalf("%s: push failed:\n%s", what, r)
				}
				parsePush(t, r)
			}
			n := rc.requireConsistent(what, true)
			// The kill landed during the writes when the push was not
			// complete and the mirror holds an upload cut off, or blobs
			// or tags it did not hold before.
			after, _ := rc.presentBytes(store)
			up := newNames(t, uploadsDir(reg), upBefore)
			mid := killed && n < fullTags && (up > 0 || after > present || n > tagsBefore)
			if mid {
				midWrite++
			}
			t.Logf("%s: %d tags, %d bytes of blobs (%d before), %d uploads cut off; during the writes: %v", what, n, after, present, up, mid)
		}
		present, nPresent := rc.presentBytes(store)
		r := parsePush(t, cli.must("--json", "push"))
		t.Logf("round %d: %d blobs (%d bytes) there before the rerun, which sent %+v", i, nPresent, present, r)
		if r.BytesUploaded+present > full.BytesUploaded {
			t.Fatalf("round %d: rerun uploaded %d bytes with %d already there; a full push is %d", i, r.BytesUploaded, present, full.BytesUploaded)
		}
		if present > 0 {
			killedWithData++
			if r.BytesUploaded >= full.BytesUploaded {
				t.Fatalf("round %d: rerun uploaded %d bytes though %d were there; a full push is %d", i, r.BytesUploaded, present, full.BytesUploaded)
			}
		}
		if nt := rc.requireConsistent(fmt.Sprintf("round %d after the rerun", i), false); nt == 0 {
			t.Fatalf("round %d: no tags after a completed push", i)
		}
		if again := parsePush(t, cli.must("--json", "push")); again.BytesUploaded != 0 || again.BlobsUploaded != 0 || again.Manifests != 0 {
			t.Fatalf("round %d: a push after a completed one sent %+v", i, again)
		}
	}
	t.Logf("%d of 5 rounds had blobs committed before the rerun; %d of %d kills landed during the writes", killedWithData, midWrite, kills)
	if 2*midWrite <= kills {
		t.Fatalf("only %d of %d kills landed while the push was writing", midWrite, kills)
	}

	// A new PC pulls from the mirror and restores identically.
	fresh := cli.onStore(filepath.Join(dir, "new-pc"))
	fresh.must("pull", url)
	fresh.requireRestores("latest", home)
	fresh.must("verify", "--read-data")
}
