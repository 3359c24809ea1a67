package tensorfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A disk that fills up mid-write: the write fails with a clear error, the
// previous file is intact and no temporary file is left. Uses a 64 KiB
// tmpfs, so it needs root; skipped elsewhere.
func TestDiskFullMidWrite(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	path := filepath.Join(dir, "refusal_responses.json")
	if err := WriteJSONAtomic(path, []string{"previous run"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	big := make([]map[string]string, 400)
	for i := range big {
		big[i] = map[string]string{"instruction": strings.Repeat("x", 500), "response": strings.Repeat("y", 500)}
	}
	err := WriteJSONAtomic(path, big)
	if err == nil {
		t.Fatal("writing 400 kB to a 64 kB disk succeeded")
	}
	if !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "free") {
		t.Errorf("error %q does not say the disk is full and what to do", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Errorf("the previous file changed: %q", after)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
