package refusalkit

import (
	"fmt"
	"io"
	"sync"

	"github.com/schollz/progressbar/v3"
)

// Progress returns a callback drawing one progress bar per stage on w: the
// count, the rate in rows per second, and the time left.
func Progress(w io.Writer) func(stage string, done, total int) {
	var mu sync.Mutex
	bars := map[string]*progressbar.ProgressBar{}
	return func(stage string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		bar, ok := bars[stage]
		if !ok {
			bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(fmt.Sprintf("%-20s", stage)),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("rows"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetWidth(24),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
			)
			bars[stage] = bar
		}
		_ = bar.Set(done)
	}
}
