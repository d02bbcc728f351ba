package media

import (
	"bytes"
	stdhtml "html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func samplePage() Page {
	return Page{
		Label: "DVPC_20261125", StoreID: "AXR45HSZ7O2RMIC4", Medium: "DVD",
		Signer:        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMLV5MaNJKuNiHUE1lioc4xWa0ZPkd8fFGLVDeUgQTQl",
		Signature:     "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		Clients:       []string{"dvpc/dvpc-linux-amd64", "dvpc/dvpc-windows-amd64.exe"},
		PublicDetails: true,
		Snapshots: []PageSnapshot{
			{ID: "0aa47ed2ea34", Time: time.Date(2026, 11, 18, 9, 30, 0, 0, time.UTC), Host: "laptop", Files: 1204, Bytes: 3 << 30},
			{ID: "c6401544be83", Time: time.Date(2026, 11, 25, 9, 31, 7, 0, time.UTC), Host: "laptop", Files: 1210, Bytes: 3<<30 + 5<<20},
		},
	}
}

// TestIndexHTMLInChromium renders the disc's index page in headless
// Chromium, as a phone or a strange PC would show it, and checks the text of
// the rendered page and that a screenshot is drawn: with the snapshots
// listed (--public-details), and by default, without them.
func TestIndexHTMLInChromium(t *testing.T) {
	text := renderInChromium(t, samplePage())
	for _, want := range []string{"0aa47ed2ea34", "c6401544be83", "2026-11-25 09:31:07 UTC", "3.0 GiB", "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"Linux", "macOS", "Windows", "dvpc-windows-amd64.exe", "ssh-keygen -Y verify -f allowed_signers -I dvpc -n dvpc-client -s CLIENT.sig &lt; CLIENT"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	p := samplePage()
	p.PublicDetails = false
	text = renderInChromium(t, p)
	for _, want := range []string{"SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "DVPC_20261125", "dvpc attach /dev/sr0",
		"dvpc-windows-amd64.exe", "ssh-keygen -Y verify -f allowed_signers -I dvpc -n dvpc-client -s CLIENT.sig &lt; CLIENT"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered default page lacks %q", want)
		}
	}
	for _, leak := range []string{"0aa47ed2ea34", "c6401544be83", "2026-11", "09:31", "laptop", "1204", "1210", "GiB"} {
		if strings.Contains(text, leak) {
			t.Errorf("rendered default page shows %q", leak)
		}
	}
}

// renderInChromium renders p's index page in headless Chromium, checks
// that a screenshot is drawn and returns the text of the rendered page.
func renderInChromium(t *testing.T, p Page) string {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install chromium")
	}
	html, err := IndexHTML(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "index.html")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=412,915"}
	shot := filepath.Join(dir, "shot.png")
	out, err := exec.Command(chromium, append(flags, "--screenshot="+shot, "file://"+page)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("no screenshot drawn (%d bytes, %v)", len(png), err)
	}
	// The text of the rendered page, as the browser laid it out.
	text, err := exec.Command(chromium, append(flags, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	return string(text)
}

func TestReadme(t *testing.T) {
	txt := string(ReadmeTXT(samplePage()))
	for _, want := range []string{"0aa47ed2ea34", "2026-11-25 09:31:07 UTC", "index.html", "restore latest", "\r\n",
		"\r\n    ssh-keygen -Y verify -f allowed_signers -I dvpc -n dvpc-client -s CLIENT.sig < CLIENT\r\n"} {
		if !strings.Contains(txt, want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
	p := samplePage()
	p.PublicDetails = false
	txt = string(ReadmeTXT(p))
	for _, leak := range []string{"0aa47ed2ea34", "c6401544be83", "2026-11", "09:31", "laptop", "1204", "1210", "GiB"} {
		if strings.Contains(txt, leak) {
			t.Errorf("default README.txt shows %q:\n%s", leak, txt)
		}
	}
	for _, want := range []string{"SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "dvpc attach /dev/sr0", "dvpc/dvpc-windows-amd64.exe"} {
		if !strings.Contains(txt, want) {
			t.Errorf("default README.txt lacks %q", want)
		}
	}
}

func TestParseCapacity(t *testing.T) {
	for in, want := range map[string]int64{"dvd": 4_700_372_992, "BD": 25_025_314_816, "700M": 700 << 20, "1.5GiB": 3 << 29, "4.7GB": 4_700_000_000, "123": 123} {
		got, err := ParseCapacity(in)
		if err != nil || got != want {
			t.Errorf("ParseCapacity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5M", "lots", "0"} {
		if _, err := ParseCapacity(in); err == nil {
			t.Errorf("ParseCapacity(%q) accepted", in)
		}
	}
}

// TestPageSystems checks the instructions for each kind of medium and set
// of clients: the paths where the medium and its programs appear, commands
// that name only the programs present, and how to get the others.
func TestPageSystems(t *testing.T) {
	all := []string{"dvpc/dvpc-darwin-amd64", "dvpc/dvpc-darwin-arm64", "dvpc/dvpc-linux-amd64", "dvpc/dvpc-linux-arm64", "dvpc/dvpc-windows-amd64.exe"}
	named := regexp.MustCompile(`dvpc-(linux|darwin|windows)-[a-z0-9]+(\.exe)?`)
	for _, tc := range []struct {
		name    string
		medium  string
		clients []string
		disc    int
		// want: the command lines of each system, "" for none.
		linux, mac, windows []string
		device              string
	}{
		{name: "DVD with its own client", medium: MediumDVD, clients: []string{"dvpc/dvpc-linux-amd64"}, device: "/dev/sr0",
			linux: []string{
				"/media/$USER/DVPC_20261125/dvpc/dvpc-linux-amd64 --store /media/$USER/DVPC_20261125 log",
				"/media/$USER/DVPC_20261125/dvpc/dvpc-linux-amd64 --store /media/$USER/DVPC_20261125 restore latest --to ~/restored"}},
		{name: "USB key with every client", medium: MediumUSB, clients: all, device: "/dev/sdX",
			linux: []string{
				"cp /media/$USER/DVPC/dvpc/dvpc-linux-amd64 ~/dvpc-linux-amd64 && chmod +x ~/dvpc-linux-amd64",
				"~/dvpc-linux-amd64 --store /media/$USER/DVPC log",
				"~/dvpc-linux-amd64 --store /media/$USER/DVPC restore latest --to ~/restored"},
			mac: []string{
				"/Volumes/DVPC/dvpc/dvpc-darwin-arm64 --store /Volumes/DVPC log",
				"/Volumes/DVPC/dvpc/dvpc-darwin-arm64 --store /Volumes/DVPC restore latest --to ~/restored"},
			windows: []string{
				`E:\dvpc\dvpc-windows-amd64.exe --store E:\ log`,
				`E:\dvpc\dvpc-windows-amd64.exe --store E:\ restore latest --to $HOME\restored`}},
		{name: "DVD without clients", medium: MediumDVD, device: "/dev/sr0"},
		{name: "second disc of a set", medium: MediumDVD, disc: 2, device: "/dev/sr0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePage()
			p.Medium, p.Clients = tc.medium, tc.clients
			if tc.disc > 0 {
				p.Disc, p.Discs = tc.disc, 3
			}
			html, err := IndexHTML(p)
			if err != nil {
				t.Fatal(err)
			}
			htmlText := stdhtml.UnescapeString(string(html))
			readme := strings.ReplaceAll(string(ReadmeTXT(p)), "\r\n", "\n")
			want := map[string][]string{"Linux": tc.linux, "macOS": tc.mac, "Windows": tc.windows}
			for _, s := range p.Systems() {
				if !slices.Equal(s.Commands, want[s.Name]) {
					t.Errorf("%s: commands\n%q\nwant\n%q", s.Name, s.Commands, want[s.Name])
				}
				for _, c := range s.Commands {
					if !strings.Contains(readme, "\n    "+c+"\n") || !strings.Contains(htmlText, c) {
						t.Errorf("%s: %q is not a line of README.txt and index.html", s.Name, c)
					}
				}
				switch {
				case len(s.Commands) == 0 && tc.disc > 1:
					if !strings.Contains(s.Get, "disc 1") {
						t.Errorf("%s: %q does not send to disc 1", s.Name, s.Get)
					}
				case len(s.Commands) == 0:
					for _, w := range []string{ModuleInstall, "make clients", "--clients"} {
						if !strings.Contains(s.Get, w) || !strings.Contains(readme, w) || !strings.Contains(htmlText, w) {
							t.Errorf("%s: how to get a client lacks %q: %q", s.Name, w, s.Get)
						}
					}
				case s.Get != "":
					t.Errorf("%s has a client but says how to get one", s.Name)
				}
			}
			for what, text := range map[string]string{"README.txt": readme, "index.html": htmlText} {
				for _, n := range named.FindAllString(text, -1) {
					if !slices.Contains(tc.clients, "dvpc/"+n) {
						t.Errorf("%s names %s, which the medium does not carry", what, n)
					}
				}
				other := map[string]string{"/dev/sr0": "/dev/sdX", "/dev/sdX": "/dev/sr0"}[tc.device]
				if !strings.Contains(text, "dvpc --store "+tc.device+" log") || strings.Contains(text, other) {
					t.Errorf("%s: the command without mounting should name %s, not %s", what, tc.device, other)
				}
			}
			if len(tc.clients) > 0 && !strings.Contains(readme, "dvpc programs on this "+tc.medium+": "+strings.Join(tc.clients, ", ")+"\n") {
				t.Errorf("README.txt does not list the clients %v:\n%s", tc.clients, readme)
			}
		})
	}
}
