// Package buildinfo names the code that runs, for the provenance recorded
// beside every result and for the digests that decide when a result or a
// checkpoint may be reused.
package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Versions lists the Go toolchain and the versions of the modules a result
// depends on, read from the running binary's build information.
func Versions() map[string]string {
	v := map[string]string{"go": runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v["refusalkit"] = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v["refusalkit_revision"] = s.Value
		}
	}
	for _, d := range info.Deps {
		for _, want := range []string{"github.com/gomlx/", "github.com/daulet/tokenizers", "github.com/nikolalohinski/gonja"} {
			if strings.HasPrefix(d.Path, want) {
				v[d.Path] = d.Version
			}
		}
	}
	return v
}

var code = sync.OnceValue(func() string {
	v := "refusalkit"
	var deps []string
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			v += " " + info.Main.Version
		}
		rev, modified := "", ""
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = "+modified"
			}
		}
		if rev != "" {
			v += " " + rev[:min(12, len(rev))] + modified
		}
		for _, d := range info.Deps {
			deps = append(deps, d.Path+"@"+d.Version)
		}
	}
	v += ", " + runtime.Version()
	if src := sourceDigest(); src != "" {
		sum := sha256.Sum256([]byte(strings.Join(deps, "\n")))
		return v + ", source sha256 " + src + ", dependencies sha256 " + hex.EncodeToString(sum[:])[:16]
	}
	if exe, err := os.Executable(); err == nil {
		if f, err := os.Open(exe); err == nil {
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				v += ", executable sha256 " + hex.EncodeToString(h.Sum(nil))[:16]
			}
		}
	}
	return v
})

// Code names the code that runs: refusalkit's version and revision (from
// the build information), the Go toolchain, and either the sha256 of the
// module's Go sources and of its dependency list — when the source tree it
// was built from is on this machine, as for `go run`, the commands built
// here and every GoNB cell, which each compile a new program from the same
// sources — or else the sha256 of the running executable. Any change to
// the code changes it.
func Code() string { return code() }

// sourceDigest hashes the module's non-test Go files and go.mod/go.sum,
// found from this file's build-time path; "" when that tree is not here.
func sourceDigest() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // internal/buildinfo/buildinfo.go
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/refusalkit/refusalkit\n") {
		return ""
	}
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "runs" || name == "bin" || name == "notebooks") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
