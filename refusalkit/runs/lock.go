package runs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// LockFile is the lock a run holds on its run folder while it works: an
// advisory lock (flock) on this file, which the kernel drops when the
// process ends, however it ends. The file names the holder (pid, command,
// start time) and is removed when the run releases it; one left behind by a
// killed run is not locked and means nothing.
const LockFile = ".refusalkit.lock"

// Lock is a held lock on a run folder.
type Lock struct {
	f    *os.File
	path string
}

// InUseError says a run folder is locked by a run still in progress.
type InUseError struct {
	Dir     string
	PID     int    // 0 when the holder has not written its name yet
	Command string // e.g. "extract"
	Since   time.Time
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("%s is in use by a run in progress (%s): wait for it to end or choose another folder", e.Dir, e.Holder())
}

// Holder describes the run holding the lock: "refusalkit extract, pid 4242, started 12:01:02".
func (e *InUseError) Holder() string {
	s := "refusalkit"
	if e.Command != "" {
		s += " " + e.Command
	}
	if e.PID > 0 {
		s += fmt.Sprintf(", pid %d", e.PID)
	} else {
		s += ", pid unknown"
	}
	if !e.Since.IsZero() {
		s += ", started " + e.Since.Format("2006-01-02 15:04:05")
	}
	return s
}

// LockDir takes the lock of the run folder dir (which must exist) for
// command, without waiting: when another process holds it, it returns an
// *InUseError naming that process. Release the lock with Release.
func LockDir(dir, command string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if held {
			e := holderOf(dir, f)
			f.Close()
			return nil, e
		}
		// The holder before us may have removed the file between our open and
		// our lock: then the lock is on a file nobody else will see; retry.
		st, err1 := f.Stat()
		cur, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(st, cur) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, _ = fmt.Fprintf(f, "pid %d\ncommand %s\nstarted %s\n", os.Getpid(), command, time.Now().Format(time.RFC3339))
			_ = f.Sync()
		}
		return &Lock{f: f, path: path}, nil
	}
}

// ProbeLock reports whether a run in progress holds dir's lock (an
// *InUseError) without creating anything; nil when the folder or its lock
// file is absent, or the lock is free.
func ProbeLock(dir string) error {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	held, err := tryLock(f)
	if err != nil || !held {
		if err == nil {
			_ = unlock(f)
		}
		return nil
	}
	return holderOf(dir, f)
}

// Release removes the lock file and drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path) // while still held: a waiting process then retries on a fresh file
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// holderOf reads the holder's name from the lock file.
func holderOf(dir string, f *os.File) *InUseError {
	e := &InUseError{Dir: dir}
	data, _ := os.ReadFile(f.Name())
	for _, line := range strings.Split(string(data), "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "pid":
			e.PID, _ = strconv.Atoi(val)
		case "command":
			e.Command = val
		case "started":
			e.Since, _ = time.Parse(time.RFC3339, val)
		}
	}
	return e
}
