package media

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"text/tabwriter"
	"time"
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

// Page is what index.html and README.txt describe.
type Page struct {
	Label     string
	StoreID   string
	Signer    string // OpenSSH public key of the snapshot signer
	Signature string // its SHA256 fingerprint
	Snapshots []PageSnapshot
	Clients   []string // paths of the dvpc clients on the medium
	Disc      int      // this disc's number in a set; 0 when not spanned
	Discs     int
	Medium    string // "DVD" or "USB key"
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
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dvpc {{.Medium}} {{.Label}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:46em;padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;width:100%;font-size:.95em}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #ddd}
td.n{text-align:right}code,pre{background:#f4f4f4;padding:.1em .3em;border-radius:3px;overflow-x:auto}pre{padding:.6em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}.fp{word-break:break-all;font-size:.9em}
</style></head><body>
<h1>dvpc {{.Medium}} {{.Label}}{{if .Discs}} — disc {{.Disc}} of {{.Discs}}{{end}}</h1>
<p>This {{.Medium}} holds an encrypted, signed dvpc store: versioned snapshots of a home
directory. Nothing here can be read without the owner's passphrase or a recovery code.</p>
<h2>Snapshots</h2>
<table id="snapshots"><thead><tr><th>Snapshot</th><th>Taken</th><th>Host</th><th class="n">Files</th><th class="n">Size</th></tr></thead><tbody>
{{range .Snapshots}}<tr><td><code>{{.ID}}</code></td><td>{{date .Time}}</td><td>{{.Host}}</td><td class="n">{{.Files}}</td><td class="n">{{human .Bytes}}</td></tr>
{{end}}</tbody></table>
<h2>Signer</h2>
<p>Every snapshot is signed by this key; check its fingerprint against the one you wrote down:</p>
<p class="fp"><code>{{.Signature}}</code></p>
<p class="fp"><code>{{.Signer}}</code></p>
<h2>Restore your files</h2>
<p>The dvpc program for each system is in <code>dvpc/</code>{{if .Clients}}: {{range $i, $c := .Clients}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}{{end}}.
It reads this {{.Medium}} directly; nothing needs to be installed.</p>
<ul>
<li><b>Linux</b>: the {{.Medium}} appears under <code>/media</code> or <code>/run/media</code>. Run
<pre>/media/$USER/{{.Label}}/dvpc/dvpc-linux-amd64 --store /media/$USER/{{.Label}}/store log
/media/$USER/{{.Label}}/dvpc/dvpc-linux-amd64 --store /media/$USER/{{.Label}}/store restore latest --to ~/restored</pre>
or, without mounting, <code>dvpc --store /dev/sr0 log</code>.</li>
<li><b>macOS</b>: it appears under <code>/Volumes/{{.Label}}</code>. In Terminal:
<pre>/Volumes/{{.Label}}/dvpc/dvpc-darwin-arm64 --store /Volumes/{{.Label}}/store restore latest --to ~/restored</pre>
(use <code>dvpc-darwin-amd64</code> on Intel Macs).</li>
<li><b>Windows</b>: it appears as a drive, say <code>D:</code>. In PowerShell:
<pre>D:\dvpc\dvpc-windows-amd64.exe --store D:\store restore latest --to $HOME\restored</pre></li>
</ul>
<p>Store {{.StoreID}}. The store is a standard OCI image layout; see README.txt.</p>
</body></html>
`))

// IndexHTML renders the medium's index page.
func IndexHTML(p Page) ([]byte, error) {
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadmeTXT renders the plain-text description of the medium.
func ReadmeTXT(p Page) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "dvpc %s %s", p.Medium, p.Label)
	if p.Discs > 0 {
		fmt.Fprintf(&b, " (disc %d of %d)", p.Disc, p.Discs)
	}
	fmt.Fprintf(&b, "\n\nThis %s holds an encrypted, signed dvpc store (store/, an OCI image layout)\n", p.Medium)
	fmt.Fprintf(&b, "and the dvpc program for several systems (dvpc/). Open index.html in a browser\nfor step-by-step instructions.\n\n")
	fmt.Fprintf(&b, "Snapshots:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, s := range p.Snapshots {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d files\t%s\n", s.ID, s.Time.UTC().Format("2006-01-02 15:04:05 UTC"), s.Host, s.Files, HumanBytes(s.Bytes))
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nSigner: %s\n        %s\n\n", p.Signature, p.Signer)
	fmt.Fprintf(&b, "Restore: dvpc --store <this medium>/store restore latest --to <empty directory>\n")
	fmt.Fprintf(&b, "List:    dvpc --store <this medium>/store log\n")
	return []byte(strings.ReplaceAll(b.String(), "\n", "\r\n"))
}
