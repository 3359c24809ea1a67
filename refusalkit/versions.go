package refusalkit

import (
	"runtime"
	"runtime/debug"
	"strings"
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
