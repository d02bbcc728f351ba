package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

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
	return io.ReadAll(io.LimitReader(f, 64<<10))
}
