package image

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newKeyedLayout(t *testing.T) (*Layout, []string) {
	t.Helper()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	codes, _, err := Init(context.Background(), lay, []byte("pw"), testArgon)
	if err != nil {
		t.Fatal(err)
	}
	return lay, codes
}

func requireCodeError(t *testing.T, err error, reason CodeReason) *CodeError {
	t.Helper()
	var ce *CodeError
	if !errors.As(err, &ce) || ce.Reason != reason {
		t.Fatalf("got %v, want a recovery code error of reason %d", err, reason)
	}
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("%v does not wrap ErrWrongPassphrase", err)
	}
	return ce
}

// TestRecoveryCodeWrongLastCharacter: a code whose last character is wrong
// is refused as mistyped before any wrapper is looked at, and burns nothing;
// the right code then still works.
func TestRecoveryCodeWrongLastCharacter(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	code := codes[4]
	// The neighbour in the alphabet: in codes without a checksum, this
	// changed only a spare bit and the code was accepted.
	i := strings.IndexByte(base32Alphabet, code[len(code)-1])
	bad := code[:len(code)-1] + string(base32Alphabet[i^1])

	_, _, err := Open(ctx, lay, []byte(bad))
	ce := requireCodeError(t, err, CodeMistyped)
	if got, want := ce.Error(), "this recovery code is mistyped (checksum fails): check each group"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	kf, err := ReadKeyFile(ctx, lay)
	if err != nil {
		t.Fatal(err)
	}
	if kf.RecoveryLeft() != RecoveryCodes || len(kf.used) != 0 {
		t.Fatalf("a mistyped code burnt something: %d codes left, used %v", kf.RecoveryLeft(), kf.used)
	}
	// The checksum is checked first: even with its wrapper gone, the
	// mistyped code is called mistyped, not used.
	kf.Recipients = slices.DeleteFunc(kf.Recipients, func(r Recipient) bool { return r.ID == "5" })
	if _, err := kf.Unlock([]byte(bad)); err == nil {
		t.Fatal("a mistyped code unlocked")
	} else {
		requireCodeError(t, err, CodeMistyped)
	}
	_, info, err := Open(ctx, lay, []byte(code))
	if err != nil || !info.RecoveryUsed || info.RecoveryLeft != RecoveryCodes-1 {
		t.Fatalf("the right code after a mistyped one: %+v, %v", info, err)
	}
}

// TestRecoveryCodeEveryTypo: every change of one character of a code, and
// of its number, fails the checksum; case, dashes and spaces do not matter,
// and 0, 1 and 8 typed for O, I and B are read as those letters.
func TestRecoveryCodeEveryTypo(t *testing.T) {
	raw := make([]byte, codeBytes)
	var code string
	for seed := 0; ; seed++ { // a fixed code that holds an O, an I or a B
		for i := range raw {
			raw[i] = byte(seed*31 + i*7)
		}
		if code = formatCode(3, raw); strings.ContainsAny(code[2:], "OIB") {
			break
		}
	}
	for pos := 0; pos < len(code); pos++ {
		if code[pos] == '-' {
			continue
		}
		set := base32Alphabet
		if pos == 0 {
			set = "0123456789"
		}
		for _, r := range set {
			if byte(r) == code[pos] || (pos == 0 && r == '0') {
				continue
			}
			typo := code[:pos] + string(r) + code[pos+1:]
			c, shape, err := parseCode(typo)
			if c != nil || shape != isCode {
				t.Fatalf("%q (one character off %q) parsed as %+v, shape %d", typo, code, c, shape)
			}
			requireCodeError(t, err, CodeMistyped)
		}
	}
	mangled := strings.ToLower(strings.ReplaceAll(code, "-", " - "))
	for _, l := range []string{"o", "i", "b"} {
		mangled = strings.ReplaceAll(mangled, l, map[string]string{"o": "0", "i": "1", "b": "8"}[l])
	}
	for _, s := range []string{code, mangled, "03-" + code[2:], code[:2] + strings.ReplaceAll(code[2:], "-", "")} {
		c, shape, err := parseCode(s)
		if err != nil || shape != isCode || c.id != "3" || !bytes.Equal(c.raw, raw) || !c.checked {
			t.Errorf("parseCode(%q) = %+v, %d, %v; want code 3", s, c, shape, err)
		}
	}
}

// TestRecoveryCodeOldForm: codes printed before the checksum existed still
// unlock; one whose last character has its spare bits set is mistyped, and
// is refused (after being tried as a passphrase, since it has no checksum).
func TestRecoveryCodeOldForm(t *testing.T) {
	kf, codes, _, err := NewKeyFile([]byte("pw"), testArgon)
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range codes[:2] {
		// The old form is the new one without its 4 checksum characters.
		old := code[:len(code)-checkChars]
		old = strings.TrimSuffix(old, "-")
		u, err := kf.Unlock([]byte(old))
		if err != nil || u.RecoveryID != strconv.Itoa(i+1) {
			t.Fatalf("old-form code %q: %+v, %v", old, u, err)
		}
		last := strings.IndexByte(base32Alphabet, old[len(old)-1])
		bad := old[:len(old)-1] + string(base32Alphabet[last^1])
		_, err = kf.Unlock([]byte(bad))
		ce := requireCodeError(t, err, CodeMistyped)
		if !strings.Contains(ce.Error(), "mistyped recovery code") {
			t.Errorf("message %q", ce.Error())
		}
	}
	// An old-form code that opens nothing may be mistyped or foreign.
	other, otherCodes, _, err := NewKeyFile([]byte("pw"), testArgon)
	if err != nil {
		t.Fatal(err)
	}
	_ = other
	foreign := strings.TrimSuffix(otherCodes[0][:len(otherCodes[0])-checkChars], "-")
	_, err = kf.Unlock([]byte(foreign))
	if ce := requireCodeError(t, err, CodeForeign); !ce.Unchecked || !strings.Contains(ce.Error(), "no checksum") {
		t.Errorf("foreign old-form code: %v", ce)
	}
	// A checked code of another store is foreign, and says so.
	_, err = kf.Unlock([]byte(otherCodes[1]))
	if ce := requireCodeError(t, err, CodeForeign); ce.N != "2" || !strings.Contains(ce.Error(), "another store") {
		t.Errorf("foreign code: %v", ce)
	}
}

// TestRecoveryCodeUsed: a used code is refused saying so and when, also
// after the key file was saved again; a code burnt before the time was
// recorded still says it was used.
func TestRecoveryCodeUsed(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	before := time.Now().Truncate(time.Second)
	r, _, err := Open(ctx, lay, []byte(codes[2]))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if _, err := r.SetPassphrase(ctx, []byte("new"), Argon2Params{}); err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(ctx, lay, []byte(codes[2]))
	ce := requireCodeError(t, err, CodeUsed)
	if ce.N != "3" || ce.UsedAt.Before(before) || ce.UsedAt.After(after) {
		t.Fatalf("used code: %+v (used between %v and %v)", ce, before, after)
	}
	if msg := ce.Error(); !strings.HasPrefix(msg, "recovery code 3 was already used on "+ce.UsedAt.Local().Format("2006-01-02")) ||
		!strings.HasSuffix(msg, "; it no longer unlocks anything") {
		t.Errorf("message %q", msg)
	}
	kf, err := ReadKeyFile(ctx, lay)
	if err != nil {
		t.Fatal(err)
	}
	kf.used = nil // as a store whose code was burnt by an older dvpc
	_, err = kf.Unlock([]byte(codes[2]))
	if ce := requireCodeError(t, err, CodeUsed); ce.Error() != "recovery code 3 was already used; it no longer unlocks anything" {
		t.Errorf("message %q", ce.Error())
	}
	// A wrong passphrase is only that.
	if _, _, err := Open(ctx, lay, []byte("not it")); err != ErrWrongPassphrase {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// TestOpenUnlocked: the secrets a repo exports open the same store again
// without a passphrase, and no other store.
func TestOpenUnlocked(t *testing.T) {
	ctx := context.Background()
	lay, _ := newKeyedLayout(t)
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	secret := r.Keys().Export()
	r2, err := OpenUnlocked(ctx, lay, nil, secret)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Keys().ChunkID([]byte("x")) != r.Keys().ChunkID([]byte("x")) || r2.Keys().StoreID() != r.Keys().StoreID() {
		t.Fatal("the exported secrets open other keys")
	}
	other, _ := newKeyedLayout(t)
	if _, err := OpenUnlocked(ctx, other, nil, secret); err == nil {
		t.Fatal("one store's secrets opened another store")
	}
	for _, bad := range [][]byte{nil, secret[1:], append([]byte{exportVersion + 1}, secret[1:]...), append([]byte{1}, secret[1:]...)} {
		if _, err := OpenUnlocked(ctx, lay, nil, bad); err == nil {
			t.Fatalf("secrets %x accepted", bad)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	raw := bytes.Repeat([]byte{0x5a}, codeBytes)
	good := formatCode(7, raw)
	for _, s := range []string{good, strings.ToLower(good), good[:len(good)-5], good + "A", "1-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-A",
		"12-correct-horse-battery-staple", "pw", "", "-", "1-", "99-0000000000000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, shape, err := parseCode(s)
		switch {
		case shape == notCode:
			if c != nil || err != nil {
				t.Fatalf("not a code, yet %+v, %v", c, err)
			}
		case err != nil:
			var ce *CodeError
			if c != nil || !errors.As(err, &ce) || ce.Reason != CodeMistyped {
				t.Fatalf("%q: %+v, %v", s, c, err)
			}
		case c == nil || shape != isCode || len(c.raw) != codeBytes:
			t.Fatalf("%q: %+v, shape %d", s, c, shape)
		case c.checked:
			n, _ := strconv.Atoi(c.id)
			back, _, err := parseCode(formatCode(n, c.raw))
			if err != nil || back.id != c.id || !bytes.Equal(back.raw, c.raw) {
				t.Fatalf("%q does not format back: %+v, %v", s, back, err)
			}
		}
	})
}
