package media

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dvpc/dvpc/image"
)

// Plan is what goes on a medium: a store holding the chosen snapshots, the
// dvpc clients, and the pages that explain them.
type Plan struct {
	Label   string
	ModTime time.Time
	Store   []Entry // under store/
	Clients []Entry // under dvpc/: the programs, their signatures and allowed_signers
	Page    Page
}

// PlanOptions choose what a medium carries.
type PlanOptions struct {
	// Self is the running dvpc binary, carried as the client for its own
	// platform; ClientsDir adds the files dvpc-* found there.
	Self       string
	ClientsDir string
	Medium     string // MediumDVD or MediumUSB
	// PublicDetails lists the snapshots, with their times, hosts, file
	// counts and sizes, on the medium's pages, for anyone to read.
	PublicDetails bool
}

// NewPlan gathers the store subset for snaps (oldest first), checking every
// signature on the way, and signs the programs with the store's signing
// key.
func NewPlan(ctx context.Context, repo *image.Repo, snaps []*image.Snapshot, opts PlanOptions) (*Plan, error) {
	if len(snaps) == 0 {
		return nil, fmt.Errorf("no snapshots to put on the medium: %w", image.ErrNoSnapshot)
	}
	src := repo.Source()
	refs, err := src.Refs(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := image.SelectRefs(refs, snaps)
	if err != nil {
		return nil, err
	}
	store, err := StoreEntries(ctx, src, sel, StoreDir)
	if err != nil {
		return nil, err
	}
	newest := snaps[len(snaps)-1].Time().UTC().Truncate(time.Second)
	p := &Plan{Label: "DVPC_" + newest.Format("20060102"), ModTime: newest, Store: store}
	if p.Clients, err = clientEntries(opts); err != nil {
		return nil, err
	}
	kf := repo.KeyFile()
	p.Page = Page{Label: p.Label, StoreID: kf.StoreID, Signer: kf.SigningPublic, Signature: fingerprint(kf.SigningPublic), Medium: opts.Medium,
		PublicDetails: opts.PublicDetails, ClientSignature: fingerprint(repo.ClientSigner())}
	for _, c := range p.Clients {
		p.Page.Clients = append(p.Page.Clients, c.Path)
	}
	signed, sigs, err := signClients(p.Clients, repo)
	if err != nil {
		return nil, err
	}
	p.Clients = append(signed, sigs...)
	for _, s := range snaps {
		p.Page.Snapshots = append(p.Page.Snapshots, PageSnapshot{ID: s.ID, Time: s.Time(), Host: s.Config.Host,
			Path: s.Config.Path, Files: s.Config.Stats.Files, Bytes: s.Config.Stats.Bytes})
	}
	return p, nil
}

func fingerprint(authorizedKey string) string {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return "(unreadable key)"
	}
	sum := sha256.Sum256(pub.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ClientName is the file name of the dvpc client for a platform.
func ClientName(goos, goarch string) string {
	n := "dvpc-" + goos + "-" + goarch
	if goos == "windows" {
		n += ".exe"
	}
	return n
}

func clientEntries(opts PlanOptions) ([]Entry, error) {
	byName := map[string]Entry{}
	if opts.ClientsDir != "" {
		ents, err := os.ReadDir(opts.ClientsDir)
		if err != nil {
			return nil, fmt.Errorf("--clients: %w", err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "dvpc-") || strings.HasSuffix(e.Name(), sigSuffix) {
				continue
			}
			en, err := FileEntry(path.Join("dvpc", e.Name()), filepath.Join(opts.ClientsDir, e.Name()))
			if err != nil {
				return nil, err
			}
			en.Exec = true
			byName[e.Name()] = en
		}
	}
	if opts.Self != "" {
		name := ClientName(runtime.GOOS, runtime.GOARCH)
		if _, ok := byName[name]; !ok {
			en, err := FileEntry(path.Join("dvpc", name), opts.Self)
			if err != nil {
				return nil, fmt.Errorf("the running dvpc binary: %w", err)
			}
			en.Exec = true
			byName[name] = en
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// pages returns index.html and README.txt for the page.
func (p *Plan) pages(pg Page) ([]Entry, error) {
	html, err := IndexHTML(pg)
	if err != nil {
		return nil, err
	}
	return []Entry{bytesEntry("index.html", html), bytesEntry("README.txt", ReadmeTXT(pg))}, nil
}

// ISOContent is a single disc holding everything.
func (p *Plan) ISOContent() (Content, error) {
	pg, err := p.pages(p.Page)
	if err != nil {
		return Content{}, err
	}
	es := append(append(slices.Clone(p.Store), p.Clients...), pg...)
	return Content{Label: p.Label, ModTime: p.ModTime, Entries: es}, nil
}

// USBContent is the EFI system partition and the data partition of a USB
// key. Both carry the clients and the pages; the data partition, the one
// every system mounts (Windows gives the EFI partition no drive letter),
// also carries the store.
func (p *Plan) USBContent() (esp, data Content, err error) {
	pg := p.Page
	pg.Medium = MediumUSB
	pages, err := p.pages(pg)
	if err != nil {
		return Content{}, Content{}, err
	}
	esp = Content{Label: USBESPLabel, ModTime: p.ModTime, Entries: append(slices.Clone(p.Clients), pages...)}
	data = Content{Label: USBDataLabel, ModTime: p.ModTime, Entries: append(append(slices.Clone(p.Store), p.Clients...), pages...)}
	return esp, data, nil
}
