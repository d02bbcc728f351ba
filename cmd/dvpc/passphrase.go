package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"unicode"

	"golang.org/x/term"
)

// errNoPassphrase means no passphrase was given and there is no terminal
// to ask for one.
var errNoPassphrase = errors.New("no passphrase")

// readPassphrase takes the passphrase from DVPC_PASSPHRASE_FILE,
// DVPC_PASSPHRASE or the terminal, in that order.
func readPassphrase(stderr io.Writer, prompt string) ([]byte, error) {
	return readSecret(stderr, prompt, "DVPC_PASSPHRASE_FILE", "DVPC_PASSPHRASE")
}

func readSecret(stderr io.Writer, prompt, fileVar, valueVar string) ([]byte, error) {
	if f := os.Getenv(fileVar); f != "" {
		b, err := readSecretFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", fileVar, err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("%s names an empty file", fileVar)
		}
		return b, nil
	}
	if v := os.Getenv(valueVar); v != "" {
		return []byte(v), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: set %s or %s, or run dvpc in a terminal", errNoPassphrase, fileVar, valueVar)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return b, nil
}

// readNewPassphrase asks twice on a terminal, or takes the variables.
func readNewPassphrase(stderr io.Writer, fileVar, valueVar string) ([]byte, error) {
	if os.Getenv(fileVar) != "" || os.Getenv(valueVar) != "" {
		return readSecret(stderr, "", fileVar, valueVar)
	}
	a, err := readSecret(stderr, "New passphrase: ", fileVar, valueVar)
	if err != nil {
		return nil, err
	}
	b, err := readSecret(stderr, "Repeat it: ", fileVar, valueVar)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a, b) {
		return nil, errors.New("the two passphrases differ; nothing was changed")
	}
	return a, nil
}

// errSecretFileOpen means a passphrase file others could read or replace:
// like ssh with a private key, dvpc refuses it rather than warn, and has
// no passphrase (exit 3).
var errSecretFileOpen = fmt.Errorf("%w: the passphrase file is not private", errNoPassphrase)

// readSecretFile reads a passphrase file after checking, on the file it
// opened, that only its owner (the person running dvpc, or root) can read
// or change it.
func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkSecretFile(name, fi); err != nil {
		return nil, err
	}
	const maxSecretFile = 64 << 10
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%w: %s is over %d bytes, which no passphrase is; name the file that holds only the passphrase", errNoPassphrase, name, maxSecretFile)
	}
	return b, nil
}

// passphraseBits is a rough, no-dictionary estimate of a passphrase's
// entropy, in the spirit of zxcvbn: a run of letters counts as at most a
// guessable word (10 bits plus 3 a letter, one more for mixed case), digits
// 3.3 bits each, other characters 5 or more; the whole is capped by the
// distinct characters used, so "aaaaaaaaaaaa" is not long.
func passphraseBits(pass []byte) float64 {
	rs := []rune(string(pass))
	distinct := map[rune]bool{}
	var bits float64
	pool := map[string]bool{}
	for i := 0; i < len(rs); {
		r := rs[i]
		distinct[r] = true
		switch {
		case unicode.IsLetter(r) && r < 128:
			j, upper, lower := i, false, false
			for ; j < len(rs) && unicode.IsLetter(rs[j]) && rs[j] < 128; j++ {
				distinct[rs[j]] = true
				upper = upper || unicode.IsUpper(rs[j])
				lower = lower || unicode.IsLower(rs[j])
			}
			n := float64(j - i)
			letters := 26.0
			if upper && lower {
				letters = 52
			}
			bits += min(n*math.Log2(letters), 10+3*n)
			if upper && lower {
				bits++
			}
			pool["letters"] = true
			i = j
			continue
		case r >= '0' && r <= '9':
			bits += math.Log2(10)
			pool["digits"] = true
		case r < 128:
			bits += math.Log2(33)
			pool["symbols"] = true
		default:
			bits += math.Log2(100)
			pool["other"] = true
		}
		i++
	}
	size := 0
	for k := range pool {
		size += map[string]int{"letters": 52, "digits": 10, "symbols": 33, "other": 100}[k]
	}
	if size == 0 {
		return 0
	}
	return min(bits, 2*float64(len(distinct))*math.Log2(float64(size)))
}

// weakPassphraseBits is where the warning starts: a passphrase below it
// falls to an offline guesser with the key blob in days, even at the
// argon2id floor.
const weakPassphraseBits = 60

// warnWeakPassphrase warns, without refusing, about a passphrase that is
// short or drawn from few characters.
func warnWeakPassphrase(g *globals, pass []byte) {
	if bits := passphraseBits(pass); bits < weakPassphraseBits {
		fmt.Fprintf(g.stderr, "dvpc: warning: this passphrase is weak (about %.0f bits; aim for %d or more): anyone who copies the key blob from a mirror or a disc can try guesses offline. Several unrelated words, or 16 or more mixed characters, are stronger.\n", bits, weakPassphraseBits)
	}
}
