// Elfcheck checks that executables are static, so that they run in a FROM
// scratch image: no dynamic loader, no shared library. It reads the ELF
// headers with debug/elf, so make static and make release need nothing but
// Go (file(1) is not on every machine).
//
// Usage:
//
//	go run ./.ci/elfcheck FILE...
//
// It prints one line per file, and exits 1 if any is not a static ELF
// executable.
package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strings"
)

// main checks each file named on the command line.
func main() {
	code := 0
	for _, path := range os.Args[1:] {
		desc, err := check(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: not a static executable: %v\n", path, err)
			code = 1
			continue
		}
		fmt.Printf("%s: %s\n", path, desc)
	}
	os.Exit(code)
}

// check describes the static executable at path, or says why it is not one.
func check(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("it asks for a dynamic loader (PT_INTERP)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", err
	}
	if len(libs) > 0 {
		return "", fmt.Errorf("it needs %s", strings.Join(libs, ", "))
	}
	return fmt.Sprintf("%d bytes, statically linked, %v %v %v", fi.Size(), f.Machine, f.Class, f.Data), nil
}
