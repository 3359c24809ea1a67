package runs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One run at a time: a second lock on the folder is refused, naming the
// holder; a lock file a killed run left behind is not a lock.
func TestRunLock(t *testing.T) {
	dir := t.TempDir()
	if err := ProbeLock(dir); err != nil {
		t.Fatalf("probe of a folder without a lock: %v", err)
	}
	l, err := LockDir(dir, "extract")
	if err != nil {
		t.Fatal(err)
	}
	// A second open file is a second owner, even in this process.
	_, err = LockDir(dir, "evaluate")
	var e *InUseError
	if !errors.As(err, &e) || e.PID != os.Getpid() || e.Command != "extract" || time.Since(e.Since) > time.Minute {
		t.Fatalf("second lock: %v (%+v)", err, e)
	}
	if !strings.Contains(err.Error(), "in progress") || !strings.Contains(e.Holder(), "pid ") {
		t.Errorf("message %q", err)
	}
	if err := ProbeLock(dir); !errors.As(err, &e) {
		t.Errorf("probe of a held lock: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err == nil {
		t.Errorf("the lock file outlived its release")
	}
	// What a killed holder leaves: the file, unlocked.
	if err := os.WriteFile(filepath.Join(dir, LockFile), []byte("pid 1\ncommand extract\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ProbeLock(dir); err != nil {
		t.Errorf("probe of a dead run's lock file: %v", err)
	}
	l, err = LockDir(dir, "extract")
	if err != nil {
		t.Fatalf("lock over a dead run's lock file: %v", err)
	}
	l.Release()
}
