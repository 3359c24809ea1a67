// Package progress draws the commands' progress lines on a terminal.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// New returns a callback that reports each stage on w as it advances:
// the count, the rate, the elapsed time and the time left, on one line that
// is redrawn in place (a new line when the stage is done).
func New(w io.Writer) func(stage string, done, total int) {
	var mu sync.Mutex
	starts := map[string]time.Time{}
	return func(stage string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		start, ok := starts[stage]
		if !ok || done == 0 { // done == 0: the stage starts (again)
			start = time.Now()
			starts[stage] = start
		}
		elapsed := time.Since(start)
		line := fmt.Sprintf("%-20s %5d/%-5d %3.0f%%  %s elapsed", stage, done, total, 100*float64(done)/float64(max(total, 1)), roundDur(elapsed))
		if done > 0 && elapsed > time.Second/10 {
			rate := float64(done) / elapsed.Seconds()
			left := time.Duration(float64(total-done) / rate * float64(time.Second))
			line += fmt.Sprintf("  %.2f/s  %s left", rate, roundDur(left))
		}
		end := "\r"
		if done >= total {
			end = "\n"
		}
		fmt.Fprintf(w, "\r%-90s%s", line, end)
	}
}

func roundDur(d time.Duration) time.Duration { return d.Round(time.Second) }
