//go:build linux

package charts

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium is Debian's package (tools/setup/chromium.sh installs it).
const chromium = "/usr/bin/chromium"

// Screenshot width: the chart's.
const shotW = DefaultWidth

// plotArea is inside every chart's grid (top 80–100 px, bottom 60 px, left
// 80–90 px, right 40–110 px of the 900×500 canvas), clear of titles and axis names.
var plotArea = image.Rect(100, 100, 790, 430)

// expectedColors are series colours each chart must show (several hundred
// pixels each): the bars, the selected layer, the line, the ends of the
// heat map's colour scale.
var expectedColors = map[string][]string{
	NameLayerScores:     {colorMain, colorSelected},
	NameRefusalRates:    {colorSelected},
	NameKeptVsGenerated: {colorMuted, colorKept},
	NameVectorNorms:     {colorMain, colorMuted},
	NameCosineHeatmap:   {diverging[0], diverging[len(diverging)-1]},
}

// screenshot opens page in headless Chromium with every network path closed
// and returns the PNG and what the page wrote to the console. dir is scratch.
func screenshot(dir, page string, height int) (png []byte, console string, err error) {
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		// No network: names resolve to nothing and any connection goes to a
		// closed local port; the page's CSP forbids loads anyway.
		"--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
		"--enable-logging=stderr", "--v=0", // console messages, as INFO:CONSOLE lines
		fmt.Sprintf("--window-size=%d,%d", shotW, height),
		"--virtual-time-budget=3000", // lets ECharts' 1 s animations finish without waiting
		"--screenshot="+shot,
		"file://"+page)
	// Chromium forks helpers: kill the whole group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, out.String(), fmt.Errorf("chromium: %w\n%s", err, out.String())
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		return nil, out.String(), fmt.Errorf("chromium wrote no screenshot: %w\n%s", err, out.String())
	}
	return b, out.String(), nil
}

// consoleLine matches Chromium's log of a console message.
var consoleLine = regexp.MustCompile(`INFO:CONSOLE[^\]]*\] (.*)`)

func near(r, g, b uint32, hex string, tol int32) bool {
	var want [3]int32
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &want[0], &want[1], &want[2]); err != nil {
		panic(err)
	}
	for i, v := range [3]uint32{r, g, b} {
		d := int32(v>>8) - want[i]
		if d < -tol || d > tol {
			return false
		}
	}
	return true
}

// notebookPage imitates a classic Jupyter output area: RequireJS's define is
// on the page, and two cells' fragments follow one another (the second must
// reuse the library the first defined).
func notebookPage(t *testing.T, first, second *Chart) string {
	a, err := first.Fragment()
	if err != nil {
		t.Fatal(err)
	}
	b, err := second.Fragment()
	if err != nil {
		t.Fatal(err)
	}
	return "<!DOCTYPE html><html><head><meta charset=\"utf-8\">" +
		"<script>function define(deps, factory) { window.amdDefined = true; } define.amd = {};</script>" +
		"</head><body style=\"margin:0\">" + a + b +
		"<script>if (window.amdDefined) console.error('Uncaught: echarts registered with RequireJS instead of window');</script>" +
		"</body></html>"
}

// placed is a chart in the screenshot: its name and how far down its canvas starts.
type placed struct {
	name string
	dy   int
}

// TestBrowserDrawsCharts opens every chart's page, as WriteHTML writes it,
// in headless Chromium with the network closed, and checks from a screenshot
// that each chart was drawn. One browser shows all pages, each in an iframe
// of its own (starting Chromium costs ~2-3 s on two cores; one per page ran
// three times longer); a last frame holds two notebook fragments.
func TestBrowserDrawsCharts(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not installed (tools/setup/chromium.sh installs it)", chromium)
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	dir := t.TempDir()
	frame := func(file string, height int) string {
		return fmt.Sprintf(`<iframe src="%s" style="border:0;display:block;width:%dpx;height:%dpx"></iframe>`, file, shotW, height)
	}
	var frames strings.Builder
	var charts []placed
	y := 0
	for _, s := range samples() {
		if err := s.chart().WriteHTML(filepath.Join(dir, s.name+".html")); err != nil {
			t.Fatal(err)
		}
		frames.WriteString(frame(s.name+".html", DefaultHeight))
		charts = append(charts, placed{s.name, y})
		y += DefaultHeight
	}
	nb := notebookPage(t, VectorNorms([]float64{1, 2, 3, 2.5, 4}),
		KeptVsGenerated(map[string]int{"compliant": 10, "refusal": 10}, map[string]int{"compliant": 8, "refusal": 10}))
	if err := os.WriteFile(filepath.Join(dir, "notebook.html"), []byte(nb), 0o644); err != nil {
		t.Fatal(err)
	}
	frames.WriteString(frame("notebook.html", 2*DefaultHeight))
	charts = append(charts, placed{NameVectorNorms, y}, placed{NameKeptVsGenerated, y + DefaultHeight})
	y += 2 * DefaultHeight
	all := filepath.Join(dir, "all.html")
	if err := os.WriteFile(all, []byte(`<!DOCTYPE html><html><body style="margin:0">`+frames.String()+`</body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}

	b, console, err := screenshot(dir, all, y)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CHARTS_KEEP_SHOTS") != "" { // to look at it: CHARTS_KEEP_SHOTS=1 go test -v -run Browser
		kept := filepath.Join(os.TempDir(), "refusalkit-charts.png")
		if err := os.WriteFile(kept, b, 0o644); err == nil {
			t.Logf("screenshot: %s", kept)
		}
	}
	for _, m := range consoleLine.FindAllStringSubmatch(console, -1) {
		msg := m[1]
		if strings.Contains(msg, "Uncaught") || strings.Contains(msg, "Content Security Policy") ||
			strings.Contains(msg, "Refused to") || strings.Contains(msg, "ERR_") {
			t.Errorf("console: %s", msg)
		}
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sz := img.Bounds().Size(); sz.X != shotW || sz.Y != y {
		t.Fatalf("screenshot is %v, want %dx%d", sz, shotW, y)
	}
	for i, c := range charts {
		for _, problem := range checkDrawn(t, img, c.name, c.dy) {
			t.Errorf("frame %d, %s: %s", i, c.name, problem)
		}
	}
}

// minShare is the least share of non-white pixels in the plot area: a line
// chart draws little ink, bars and heat maps a lot.
var minShare = map[string]float64{NameRefusalRates: 0.015}

const defaultMinShare = 0.10

// checkDrawn lists what is wrong with a chart's screenshot, its canvas dy
// pixels down the page: too little ink in the plot area, too few colours, or
// a series colour missing.
func checkDrawn(t *testing.T, img image.Image, name string, dy int) (problems []string) {
	var total, nonWhite int
	bins := map[uint32]int{} // 4 bits per channel
	matches := map[string]int{}
	for y := plotArea.Min.Y + dy; y < plotArea.Max.Y+dy; y++ {
		for x := plotArea.Min.X; x < plotArea.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			total++
			if r>>8 > 235 && g>>8 > 235 && b>>8 > 235 {
				continue
			}
			nonWhite++
			bins[(r>>12)<<8|(g>>12)<<4|b>>12]++
			for _, c := range expectedColors[name] {
				if near(r, g, b, c, 12) {
					matches[c]++
				}
			}
		}
	}
	distinct := 0
	for _, n := range bins {
		if n >= 30 {
			distinct++
		}
	}
	share := float64(nonWhite) / float64(total)
	t.Logf("%s plot area: %.1f%% non-white, %d distinct colours, series colours %v", name, 100*share, distinct, matches)
	want, ok := minShare[name]
	if !ok {
		want = defaultMinShare
	}
	if share < want {
		problems = append(problems, fmt.Sprintf("plot area is %.1f%% non-white, want at least %.1f%%: the chart was not drawn", 100*share, 100*want))
	}
	if distinct < 3 {
		problems = append(problems, fmt.Sprintf("plot area has %d distinct colours, want at least 3", distinct))
	}
	for _, c := range expectedColors[name] {
		if matches[c] < 200 {
			problems = append(problems, fmt.Sprintf("series colour %s covers %d pixels, want at least 200", c, matches[c]))
		}
	}
	return problems
}

// TestCheckDrawnRejectsBlank: the pixel check must fail a blank page and a
// page that drew only axes and grid lines.
func TestCheckDrawnRejectsBlank(t *testing.T) {
	blank := image.NewRGBA(image.Rect(0, 0, shotW, DefaultHeight))
	for i := range blank.Pix {
		blank.Pix[i] = 0xff
	}
	grid := image.NewRGBA(blank.Rect)
	copy(grid.Pix, blank.Pix)
	for y := 80; y < 440; y += 36 { // ECharts' grid-line grey
		for x := 80; x < 860; x++ {
			grid.Set(x, y, color.RGBA{0xe0, 0xe6, 0xf1, 0xff})
		}
	}
	for name := range expectedColors {
		for what, img := range map[string]image.Image{"blank": blank, "grid only": grid} {
			if len(checkDrawn(t, img, name, 0)) == 0 {
				t.Errorf("%s: a %s page passed the check", name, what)
			}
		}
	}
}
