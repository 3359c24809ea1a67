package refusalkit

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A dataset past MaxDatasetBytes is refused with its size, in every format
// and for an endless file, instead of exhausting memory.
func TestHugeDatasetRefused(t *testing.T) {
	saved := MaxDatasetBytes
	MaxDatasetBytes = 1 << 20
	defer func() { MaxDatasetBytes = saved }()
	dir := t.TempDir()
	row := `{"instruction": "` + strings.Repeat("x", 1000) + `"}`
	files := map[string]string{
		"big.json":  "[" + strings.Repeat(row+",", 1100) + row + "]",
		"big.csv":   "instruction\n" + strings.Repeat(strings.Repeat("y", 1000)+"\n", 1100),
		"big.jsonl": strings.Repeat(row+"\n", 1100),
	}
	for name, body := range files {
		_ = os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	if runtime.GOOS == "linux" {
		_ = os.Symlink("/dev/zero", filepath.Join(dir, "zero.json"))
		files["zero.json"] = ""
	}
	for name := range files {
		_, err := LoadDataset(filepath.Join(dir, name))
		if err == nil || !strings.Contains(err.Error(), "is larger than 1 MiB: give a smaller file") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// A file just under the limit still loads.
	small := filepath.Join(dir, "small.jsonl")
	_ = os.WriteFile(small, []byte(strings.Repeat(row+"\n", 3)), 0o644)
	if _, err := LoadDataset(small); err != nil {
		t.Errorf("small file: %v", err)
	}
}
