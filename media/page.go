package media

import (
	"bytes"
	"fmt"
	"html/template"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dvpc/dvpc/image"
)

// PageSnapshot is one snapshot as the disc's index page shows it.
type PageSnapshot struct {
	ID    string
	Time  time.Time
	Host  string
	Path  string
	Files int64
	Bytes int64
}

// Page is what index.html and README.txt describe. By default they show
// only what identifies the medium and how to use it: its label, store ID,
// signer, programs and the commands to type. The snapshots (times, host,
// file counts and sizes) are shown only with PublicDetails; otherwise dvpc
// shows them once the medium is unlocked.
type Page struct {
	Label     string
	StoreID   string
	Signer    string // OpenSSH public key of the snapshot signer
	Signature string // its SHA256 fingerprint
	Snapshots []PageSnapshot
	// PublicDetails shows Snapshots to anyone who reads the medium.
	PublicDetails bool
	Clients       []string // paths of the dvpc clients on the medium, such as "dvpc/dvpc-linux-amd64"
	// ClientSignature is the SHA256 fingerprint of the key the clients are
	// signed with, as `ssh-keygen -Y verify` reports it.
	ClientSignature string
	Disc            int // this disc's number in a set; 0 when not spanned
	Discs           int
	Medium          string // MediumDVD or MediumUSB
	// Apps are the apps whose images the medium carries (media made
	// --with-apps): their layers are public images, so the page says
	// which they are.
	Apps []PageApp
}

// PageApp is one app a medium carries the image of.
type PageApp struct {
	Name      string
	Ref       string
	Platforms []string
}

// appsNote says what carrying apps shows to anyone who finds the medium.
const appsNote = "This medium also carries the images of these apps, so that a login with no network installs them. Their layers are public images, not encrypted: anyone who reads the medium sees which apps it carries."

// The media a page describes.
const (
	MediumDVD = "DVD"
	MediumUSB = "USB key"
)

// ModuleInstall is how a person with Go installs dvpc on a system whose
// client a medium lacks.
const ModuleInstall = "go install github.com/dvpc/dvpc/cmd/dvpc@latest"

// PageSystem is what a page tells the people on one operating system.
type PageSystem struct {
	Name string // "Linux", "macOS", "Windows"
	// Mount is where the medium appears once the system mounts it, and Also
	// another place it may appear ("" if none).
	Mount, Also string
	// Client is the client to run, as the page names it ("" when the
	// medium carries none for this system), and Others the other clients
	// for it, with the machines they are for.
	Client string
	Others []string
	// Commands are the lines to type, in order, in the system's shell.
	Commands []string
	// Unmounted is a command that reads the medium without mounting it,
	// with dvpc installed ("" if the system has none).
	Unmounted string
	// Get says how to get a client when the medium carries none.
	Get string
}

// clientOS is the operating system and architecture of a client path.
func clientOS(p string) (goos, goarch string, ok bool) {
	name := strings.TrimSuffix(path.Base(p), ".exe")
	parts := strings.Split(strings.TrimPrefix(name, "dvpc-"), "-")
	if !strings.HasPrefix(name, "dvpc-") || len(parts) != 2 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// archNames says which machines an architecture is for.
var archNames = map[string]string{"amd64": "x86-64 (Intel, AMD)", "arm64": "ARM (Apple silicon, Raspberry Pi 4 and later)", "386": "32-bit x86", "arm": "32-bit ARM"}

// Systems returns the instructions for Linux, macOS and Windows: the paths
// where the medium and its clients appear, and the commands to type. They
// name only the clients the page lists.
func (p Page) Systems() []PageSystem {
	vol := p.volume()
	dev, winDrive := "/dev/sr0", `D:`
	if p.Medium == MediumUSB {
		dev, winDrive = "/dev/sdX", `E:`
	}
	pick := func(goos string, prefer ...string) (string, []string) {
		var all []string
		for _, c := range p.Clients {
			if o, _, ok := clientOS(c); ok && o == goos {
				all = append(all, c)
			}
		}
		if len(all) == 0 {
			return "", nil
		}
		best := all[0]
		for _, arch := range slices.Backward(prefer) {
			for _, c := range all {
				if _, a, _ := clientOS(c); a == arch {
					best = c
				}
			}
		}
		var others []string
		for _, c := range all {
			if c != best {
				_, a, _ := clientOS(c)
				desc := archNames[a]
				if desc == "" {
					desc = a
				}
				others = append(others, fmt.Sprintf("%s on %s", path.Base(c), desc))
			}
		}
		return best, others
	}

	linux := PageSystem{Name: "Linux", Mount: "/media/$USER/" + vol, Also: "/run/media/$USER/" + vol,
		Unmounted: "dvpc --store " + dev + " log"}
	if c, others := pick("linux", "amd64"); c != "" {
		linux.Client, linux.Others = linux.Mount+"/"+c, others
		run := linux.Client
		if p.Medium == MediumUSB {
			// FAT has no execute bit, and Linux mounts it without one.
			run = "~/" + path.Base(c)
			linux.Commands = append(linux.Commands, "cp "+linux.Client+" "+run+" && chmod +x "+run)
		}
		linux.Commands = append(linux.Commands,
			run+" --store "+linux.Mount+" log",
			run+" --store "+linux.Mount+" restore latest --to ~/restored")
	}
	mac := PageSystem{Name: "macOS", Mount: "/Volumes/" + vol}
	if c, others := pick("darwin", "arm64"); c != "" {
		mac.Client, mac.Others = mac.Mount+"/"+c, others
		mac.Commands = []string{
			mac.Client + " --store " + mac.Mount + " log",
			mac.Client + " --store " + mac.Mount + " restore latest --to ~/restored"}
	}
	win := PageSystem{Name: "Windows", Mount: winDrive + `\`}
	if c, others := pick("windows", "amd64"); c != "" {
		win.Client, win.Others = win.Mount+strings.ReplaceAll(c, "/", `\`), others
		win.Commands = []string{
			win.Client + " --store " + win.Mount + " log",
			win.Client + " --store " + win.Mount + ` restore latest --to $HOME\restored`}
	}
	home := map[string]string{"Linux": "~", "macOS": "~", "Windows": "$HOME"}
	systems := []PageSystem{linux, mac, win}
	for i, s := range systems {
		if s.Client == "" {
			sep := "/"
			if s.Name == "Windows" {
				sep = `\`
			}
			systems[i].Get = p.getClient("dvpc --store " + s.Mount + " restore latest --to " + home[s.Name] + sep + "restored")
		}
	}
	return systems
}

// private says where the snapshots are listed when the page does not
// list them.
func (p Page) private() string {
	dev := "/dev/sr0"
	if p.Medium == MediumUSB {
		dev = "/dev/sdX"
	}
	return fmt.Sprintf("Which snapshots this %s holds, when they were taken, on which computer, and their sizes are shown "+
		"only to whoever unlocks it: `dvpc attach %s` (or the `log` command below) asks for the passphrase or a recovery code, then lists them.", p.Medium, dev)
}

// checkIntro introduces the command that checks a program with OpenSSH.
func (p Page) checkIntro() string {
	example := ClientName("linux", "amd64")
	if len(p.Clients) > 0 {
		example = path.Base(p.Clients[0])
	}
	return fmt.Sprintf("Each program is signed with the store's key. Before you run one, check it on any computer with OpenSSH "+
		"(Linux, macOS, Windows 10 and later): in a terminal in the %s folder of this %s (on Windows, in cmd), type, with CLIENT the program's name, such as %s:",
		ClientsDir, p.Medium, example)
}

// checkOutcome says what the check must print.
func (p Page) checkOutcome() string {
	fp := p.ClientSignature
	if fp == "" {
		fp = p.Signature
	}
	return fmt.Sprintf("It must print `Good \"%s\" signature for %s with ED25519 key %s`, the signer's fingerprint, which you wrote down. "+
		"If it prints anything else, do not run the program and do not type your passphrase into it.", image.ClientNamespace, image.ClientPrincipal, fp)
}

// getClient says how to get a client the medium does not carry, and then
// run restore.
func (p Page) getClient(restore string) string {
	if p.Discs > 1 && p.Disc != 1 {
		return "The dvpc programs are on disc 1 of this set."
	}
	return fmt.Sprintf("This %s carries no dvpc program for this system. Install one: with Go (https://go.dev/dl/), `%s`; then `%s`. "+
		"Whoever writes these media can carry a program for every system: `make clients` in the dvpc source builds them into dist/, "+
		"and `--clients dist` on `dvpc media iso` or `dvpc media usb` adds them.", p.Medium, ModuleInstall, restore)
}

// volume is the name systems show for the mounted medium: the ISO volume
// identifier of a disc, the label of a USB key's data partition.
func (p Page) volume() string {
	if p.Medium == MediumUSB {
		return USBDataLabel
	}
	v, err := ISOVolumeID(p.Label)
	if err != nil {
		return p.Label
	}
	return v
}

// HumanBytes renders n with binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var pageTmpl = template.Must(template.New("index").Funcs(template.FuncMap{
	"human": HumanBytes,
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"base":  path.Base,
	"lines": func(ls []string) string { return strings.Join(ls, "\n") },
	"ticks": codeSpans,
	"join":  strings.Join,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dvpc {{.P.Medium}} {{.P.Label}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:46em;padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;width:100%;font-size:.95em}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #ddd}
td.n{text-align:right}code,pre{background:#f4f4f4;padding:.1em .3em;border-radius:3px;overflow-x:auto}pre{padding:.6em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}.fp{word-break:break-all;font-size:.9em}
</style></head><body>
<h1>dvpc {{.P.Medium}} {{.P.Label}}{{if .P.Discs}} — disc {{.P.Disc}} of {{.P.Discs}}{{end}}</h1>
<p>This {{.P.Medium}} holds an encrypted, signed dvpc store: versioned snapshots of a home
directory. Nothing here can be read without the owner's passphrase or a recovery code.</p>
{{if .P.PublicDetails}}<h2>Snapshots</h2>
<table id="snapshots"><thead><tr><th>Snapshot</th><th>Taken</th><th>Host</th><th class="n">Files</th><th class="n">Size</th></tr></thead><tbody>
{{range .P.Snapshots}}<tr><td><code>{{.ID}}</code></td><td>{{date .Time}}</td><td>{{.Host}}</td><td class="n">{{.Files}}</td><td class="n">{{human .Bytes}}</td></tr>
{{end}}</tbody></table>
{{else}}<p id="snapshots">{{ticks .Private}}</p>
{{end}}{{if .P.Apps}}<h2>Apps</h2>
<p>{{.AppsNote}}</p>
<table id="apps"><thead><tr><th>App</th><th>Image</th><th>Platforms</th></tr></thead><tbody>
{{range .P.Apps}}<tr><td>{{.Name}}</td><td><code>{{.Ref}}</code></td><td>{{join .Platforms ", "}}</td></tr>
{{end}}</tbody></table>
{{end}}<h2>Signer</h2>
<p>Every snapshot is signed by this key; check its fingerprint against the one you wrote down:</p>
<p class="fp"><code>{{.P.Signature}}</code></p>
<p class="fp"><code>{{.P.Signer}}</code></p>
<h2>Restore your files</h2>
<p id="clients">{{if .P.Clients}}The dvpc programs on this {{.P.Medium}}: {{range $i, $c := .P.Clients}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}.
They read this {{.P.Medium}} directly; nothing needs to be installed.{{else}}This {{.P.Medium}} carries no dvpc program.{{end}}</p>
{{if .P.Clients}}<p id="check">{{ticks .CheckIntro}}</p>
<pre>{{.CheckLine}}</pre>
<p>{{ticks .CheckOutcome}}</p>
{{end}}<ul>
{{range .Systems}}<li><b>{{.Name}}</b>: the {{$.P.Medium}} appears as <code>{{.Mount}}</code>{{if .Also}} (or <code>{{.Also}}</code>){{end}}.
{{if .Commands}}Type:
<pre>{{lines .Commands}}</pre>{{range .Others}}Use <code>{{.}}</code>.<br>{{end}}{{else}}{{ticks .Get}}{{end}}
{{if .Unmounted}}Without mounting, with dvpc installed: <code>{{.Unmounted}}</code>{{if eq $.P.Medium "USB key"}} (<code>/dev/sdX</code> is the key, as <code>lsblk</code> shows it; reading a device may need <code>sudo</code>){{end}}.{{end}}</li>
{{end}}</ul>
<p>Store {{.P.StoreID}}. The store is a standard OCI image layout in <code>store/</code>; see README.txt.</p>
</body></html>
`))

// codeSpans escapes s for HTML and sets what lies between backquotes as
// code.
func codeSpans(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString("<code>" + template.HTMLEscapeString(part) + "</code>")
		} else {
			b.WriteString(template.HTMLEscapeString(part))
		}
	}
	return template.HTML(b.String())
}

// IndexHTML renders the medium's index page.
func IndexHTML(p Page) ([]byte, error) {
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, struct {
		P                                   Page
		Systems                             []PageSystem
		Private                             string
		CheckIntro, CheckLine, CheckOutcome string
		AppsNote                            string
	}{p, p.Systems(), p.private(), p.checkIntro(), ClientVerifyLine("CLIENT"), p.checkOutcome(), appsNote}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadmeTXT renders the plain-text description of the medium, with the
// same instructions as the index page. Commands are the lines indented by
// four spaces below each system's line.
func ReadmeTXT(p Page) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "dvpc %s %s", p.Medium, p.Label)
	if p.Discs > 0 {
		fmt.Fprintf(&b, " (disc %d of %d)", p.Disc, p.Discs)
	}
	fmt.Fprintf(&b, "\n\nThis %s holds an encrypted, signed dvpc store (store/, an OCI image layout).\n", p.Medium)
	fmt.Fprintf(&b, "Nothing here can be read without the owner's passphrase or a recovery code.\nindex.html shows the same in a browser.\n\n")
	if p.PublicDetails {
		fmt.Fprintf(&b, "Snapshots:\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, s := range p.Snapshots {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d files\t%s\n", s.ID, s.Time.UTC().Format("2006-01-02 15:04:05 UTC"), s.Host, s.Files, HumanBytes(s.Bytes))
		}
		tw.Flush()
	} else {
		for _, l := range wrapText(p.private(), 76) {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	if len(p.Apps) > 0 {
		fmt.Fprintf(&b, "\nApps:\n")
		for _, l := range wrapText(appsNote, 76) {
			fmt.Fprintf(&b, "%s\n", l)
		}
		for _, a := range p.Apps {
			fmt.Fprintf(&b, "  %s  %s  (%s)\n", a.Name, a.Ref, strings.Join(a.Platforms, ", "))
		}
	}
	fmt.Fprintf(&b, "\nSigner: %s\n        %s\n\n", p.Signature, p.Signer)
	if len(p.Clients) > 0 {
		fmt.Fprintf(&b, "dvpc programs on this %s: %s\n\n", p.Medium, strings.Join(p.Clients, ", "))
		for _, l := range wrapText(p.checkIntro(), 76) {
			fmt.Fprintf(&b, "%s\n", l)
		}
		fmt.Fprintf(&b, "    %s\n", ClientVerifyLine("CLIENT"))
		for _, l := range wrapText(p.checkOutcome(), 76) {
			fmt.Fprintf(&b, "%s\n", l)
		}
	} else {
		fmt.Fprintf(&b, "This %s carries no dvpc program.\n", p.Medium)
	}
	for _, s := range p.Systems() {
		fmt.Fprintf(&b, "\n%s: the %s appears as %s", s.Name, p.Medium, s.Mount)
		if s.Also != "" {
			fmt.Fprintf(&b, " (or %s)", s.Also)
		}
		fmt.Fprintf(&b, ".\n")
		if len(s.Commands) > 0 {
			fmt.Fprintf(&b, "  Type:\n")
			for _, c := range s.Commands {
				fmt.Fprintf(&b, "    %s\n", c)
			}
			for _, o := range s.Others {
				fmt.Fprintf(&b, "  Use %s.\n", o)
			}
		} else {
			for _, l := range wrapText(s.Get, 76) {
				fmt.Fprintf(&b, "  %s\n", l)
			}
		}
		if s.Unmounted != "" {
			fmt.Fprintf(&b, "  Without mounting, with dvpc installed: %s", s.Unmounted)
			if p.Medium == MediumUSB {
				fmt.Fprintf(&b, " (/dev/sdX is the key, as lsblk shows it; reading a device may need sudo)")
			}
			fmt.Fprintf(&b, "\n")
		}
	}
	return []byte(strings.ReplaceAll(b.String(), "\n", "\r\n"))
}

// wrapText breaks s into lines of at most width bytes where it can, never
// inside a `code span`.
func wrapText(s string, width int) []string {
	var words []string
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			words[len(words)-1] += "`" + part + "`" // a code span is one word
			continue
		}
		for j, w := range strings.Split(part, " ") {
			if j == 0 && len(words) > 0 {
				words[len(words)-1] += w
			} else {
				words = append(words, w)
			}
		}
	}
	var lines []string
	line := ""
	for _, w := range words {
		switch {
		case w == "":
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	return append(lines, line)
}
