// Package toolbin finds the pinned tool binaries that `make tools` installs
// (MinIO, the Lambda Runtime Interface Emulator) for local-only tooling.
package toolbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Find returns the binary called name: the path in the environment
// variable envVar when set (an error wrapping notFound when that is not an
// executable file), else .local/bin/<name> under the module root (the
// nearest directory above the working directory holding go.mod), else name
// on PATH. It returns notFound when none exists.
func Find(envVar, name string, notFound error) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s=%q is not an executable file", notFound, envVar, p)
	}
	if root, ok := ModuleRoot(); ok {
		if p := filepath.Join(root, ".local", "bin", name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", notFound
}

// ModuleRoot returns the module root: the nearest directory at or above
// the working directory that holds go.mod. ok is false when there is none
// (or the working directory is unknown).
func ModuleRoot() (root string, ok bool) {
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		if filepath.Dir(dir) == dir {
			return "", false
		}
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
