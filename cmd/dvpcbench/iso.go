//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The ISO build is measured against xorriso -as mkisofs -R -J on the same
// files. dvpc media iso writes the store, with both snapshots, to
// out/dvpc.iso (the "iso" step); then, untimed, osirrox takes every file
// out of that image into out/iso-tree, which is checked against the store,
// and xorriso builds out/xorriso.iso from that tree (the "xorriso" limit).
// The two images must then differ in size by no more than isoSizeSlack.
// Both images and the tree are deleted afterwards unless -keep.

// isoPages are the files that dvpc's image holds at its top besides
// store/ (it carries no dvpc programs with --no-clients).
var isoPages = []string{"index.html", "README.txt"}

// isoSizeSlack is how far apart in size the two images of the same files
// may be: both hold the same file data, and differ only in their
// directories, padding and boot areas.
const isoSizeSlack = 4 * mib

func (b *bench) dvpcISO() string    { return b.path("out", "dvpc.iso") }
func (b *bench) xorrisoISO() string { return b.path("out", "xorriso.iso") }
func (b *bench) isoTree() string    { return b.path("out", "iso-tree") }

// isoReport is what the ISO build is compared on.
type isoReport struct {
	DvpcSeconds       float64 `json:"dvpc_seconds"`
	XorrisoSeconds    float64 `json:"xorriso_seconds,omitempty"`
	Ratio             float64 `json:"ratio,omitempty"` // dvpc / xorriso
	DvpcImageBytes    int64   `json:"dvpc_image_bytes"`
	XorrisoImageBytes int64   `json:"xorriso_image_bytes,omitempty"`
	SizeSlackBytes    int64   `json:"size_slack_bytes"`
	Files             int     `json:"files"`      // regular files in dvpc's image
	FileBytes         int64   `json:"file_bytes"` // their bytes
	SameFiles         string  `json:"same_files"` // "ok", or how the image differs from the store
	Check             string  `json:"check"`      // "ok", or "MISMATCH: " and why
}

// afterISO records the size of dvpc's image.
func afterISO(b *bench, s *step, _ *tool, tr *toolRun, _ string) string {
	fi, err := os.Stat(b.dvpcISO())
	if err != nil {
		return "MISMATCH: " + err.Error()
	}
	tr.Steps[s.name].OutBytes = fi.Size()
	return ""
}

// prepareXorriso takes the files out of dvpc's image and checks them
// against the store.
func prepareXorriso(b *bench) error {
	dvpc := b.toolRun("dvpc").Steps["iso"]
	b.iso = &isoReport{DvpcSeconds: dvpc.Seconds, DvpcImageBytes: dvpc.OutBytes, SizeSlackBytes: isoSizeSlack}
	os.RemoveAll(b.isoTree())
	os.Remove(b.xorrisoISO())
	if _, err := b.exec("xorriso-prepare", exec.Command("osirrox", "-indev", b.dvpcISO(), "-extract", "/", b.isoTree()), nil); err != nil {
		return err
	}
	tree, err := manifest(b.isoTree())
	if err != nil {
		return err
	}
	var repo string
	for _, t := range b.tools {
		if t.name == "dvpc" {
			repo = t.repo
		}
	}
	store, err := manifest(repo)
	if err != nil {
		return err
	}
	var same error
	b.iso.Files, b.iso.FileBytes, same = compareISOTree(store, tree)
	b.iso.SameFiles = "ok"
	if same != nil {
		b.iso.SameFiles = same.Error()
	}
	return nil
}

// compareISOTree checks that tree, the files taken out of dvpc's image,
// holds under store/ the files and directories of the store, the same in
// type, size and content, and besides only the pages at its top. dvpc's
// working files in the store (names that start with .dvpc-) and its list
// of mirrors are not carried. It returns the number of regular files in tree and their
// bytes.
func compareISOTree(store, tree map[string]entry) (files int, bytes int64, err error) {
	want := map[string]entry{"store": {Type: 'd'}}
	for p, e := range store {
		if !isWorkingFile(p) {
			want["store/"+p] = e
		}
	}
	for _, p := range isoPages {
		if e, ok := tree[p]; ok && e.Type == 'f' {
			want[p] = e // its content is dvpc's to choose
		} else {
			want[p] = entry{Type: 'f', Size: -1} // missing, or not a file
		}
	}
	for _, e := range tree {
		if e.Type == 'f' {
			files++
			bytes += e.Size
		}
	}
	return files, bytes, compareManifests(want, tree, manifestOpts{})
}

// isWorkingFile says whether a path of the store is outside its OCI
// layout (oci-layout, index.json and blobs/), or is, or is below, one of
// dvpc's working files. Such files belong to this PC and never go on a
// medium: the list of mirrors (which the mirror steps, see mirror.go, write
// before the ISO build), the trust state, locks and temporary files.
func isWorkingFile(p string) bool {
	switch top, _, _ := strings.Cut(p, "/"); top {
	case "oci-layout", "index.json", "blobs":
	default:
		return true
	}
	for _, name := range strings.Split(p, "/") {
		if strings.HasPrefix(name, ".dvpc-") {
			return true
		}
	}
	return false
}

// afterXorriso records the size of xorriso's image and checks that the
// two images are of the same files.
func afterXorriso(b *bench, r *result) string {
	fi, err := os.Stat(b.xorrisoISO())
	if err != nil {
		b.iso.Check = "MISMATCH: " + err.Error()
		return b.iso.Check
	}
	r.OutBytes = fi.Size()
	b.iso.XorrisoSeconds, b.iso.XorrisoImageBytes = r.Seconds, fi.Size()
	if r.Seconds > 0 {
		b.iso.Ratio = b.iso.DvpcSeconds / r.Seconds
	}
	b.iso.Check = isoCheck(b.iso.SameFiles, b.iso.DvpcImageBytes, b.iso.XorrisoImageBytes)
	return b.iso.Check
}

// isoCheck is "ok" when dvpc's image holds the store and the two images
// are no further apart in size than isoSizeSlack.
func isoCheck(sameFiles string, dvpc, xorriso int64) string {
	var why []string
	if sameFiles != "ok" {
		why = append(why, "dvpc's image and the store: "+sameFiles)
	}
	if d := dvpc - xorriso; d > isoSizeSlack || -d > isoSizeSlack {
		why = append(why, fmt.Sprintf("the images are %.1f MiB apart", float64(max(d, -d))/mib))
	}
	if len(why) == 0 {
		return "ok"
	}
	return "MISMATCH: " + strings.Join(why, "; ")
}

// cleanupISO deletes both images and the tree unless -keep.
func cleanupISO(b *bench) {
	if !b.cfg.keep {
		os.Remove(b.dvpcISO())
		os.Remove(b.xorrisoISO())
		os.RemoveAll(b.isoTree())
	}
}

// isoDetail is the line printed under xorriso's time.
func (b *bench) isoDetail() string {
	r := b.iso
	if r == nil {
		return ""
	}
	s := fmt.Sprintf("same files: %d (%.1f MiB) taken out of dvpc's image; as in the store: %s", r.Files, float64(r.FileBytes)/mib, r.SameFiles)
	if r.XorrisoImageBytes > 0 {
		d := r.DvpcImageBytes - r.XorrisoImageBytes
		s += fmt.Sprintf("\nimages: dvpc %.1f MiB, xorriso %.1f MiB, %.2f MiB apart (at most %.0f): %s",
			float64(r.DvpcImageBytes)/mib, float64(r.XorrisoImageBytes)/mib, float64(max(d, -d))/mib, float64(isoSizeSlack)/mib, r.Check)
	}
	return s
}
