//go:build linux

package charts

import (
	"bytes"
	"context"
	"encoding/json"
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
		// Lets ECharts' 1 s animations finish without waiting, after the
		// notebook pages' timers (libraryWaitMS, a late library, the probes).
		"--virtual-time-budget=5000",
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
// three times longer); a frame holds two Fragments, as notebooks showed them
// before Init, and the last frames notebook pages of Init and Display outputs
// in several orders (libraryPages), whose chart <div>s a probe script reports
// on the console.
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
	// Notebook pages as Init and Display make them (see libraryPages).
	lib := libraryPages(t)
	for _, p := range lib {
		if err := os.WriteFile(filepath.Join(dir, p.file), []byte(p.html), 0o644); err != nil {
			t.Fatal(err)
		}
		frames.WriteString(frame(p.file, p.height))
		for _, c := range p.drawn {
			charts = append(charts, placed{c.name, y + c.dy})
		}
		for i := range p.message {
			p.message[i] += y
		}
		y += p.height
	}
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
			t.Errorf("chart %d, %s: %s", i, c.name, problem)
		}
	}
	states := probeStates(t, console)
	for _, p := range lib {
		for label, want := range p.want {
			got, ok := states[label]
			if !ok {
				t.Errorf("%s: the page logged no state %q", p.file, label)
				continue
			}
			if len(got) != len(want) {
				t.Errorf("%s, %s: %d chart <div>s, want %d", p.file, label, len(got), len(want))
				continue
			}
			for i, w := range want {
				g := got[i]
				if w == "" && (g.Canvases == 0 || g.Text != "") {
					t.Errorf("%s, %s: chart %d has %d canvases and text %q, want it drawn", p.file, label, i, g.Canvases, g.Text)
				}
				if w != "" && (g.Canvases != 0 || g.Text != w) {
					t.Errorf("%s, %s: chart %d has %d canvases and text %q, want no canvas and the text %q", p.file, label, i, g.Canvases, g.Text, w)
				}
			}
		}
		for _, dy := range p.message {
			// The message must be visible, not only in the DOM: text pixels
			// at the top of the chart's area, where nothing is drawn.
			if len(checkDrawn(t, img, NameVectorNorms, dy)) == 0 {
				t.Errorf("%s: the chart at y=%d drew although the library is missing", p.file, dy)
			}
			ink := 0
			for y := dy; y < dy+40; y++ {
				for x := 0; x < shotW; x++ {
					if r, g, b, _ := img.At(x, y).RGBA(); r>>8 > 100 && g>>8 < 120 && b>>8 < 120 {
						ink++ // the message's red
					}
				}
			}
			if ink < 100 {
				t.Errorf("%s: %d red pixels where the missing-library message should be, want at least 100", p.file, ink)
			}
		}
	}
}

// libraryPage is a page of notebook outputs, each in an output area of fixed
// height as Jupyter stacks them: the outputs of Init and Display (libraryHTML,
// displayHTML) in some order. drawn lists the charts the screenshot must
// show, message the tops of charts that must show the missing-library
// message instead, and want what each probe must log of the page's chart
// <div>s: "" for drawn, else the text the <div> holds.
type libraryPage struct {
	file    string
	html    string
	height  int
	drawn   []placed
	message []int
	want    map[string][]string
}

// initHeight is the height of the output area holding Init's output.
const initHeight = 30

// libraryPages builds the notebook pages: the library first then two charts
// (the order a notebook runs and reopens in); two charts then the library (the
// order a lazily rendered page can show); a chart whose library comes 2.6 s
// later, once the chart said it is missing (a cell run late); and a chart
// with no library at all.
func libraryPages(t *testing.T) []libraryPage {
	out := func(html string, height int) string {
		return fmt.Sprintf("<div style=\"height:%dpx;overflow:hidden\">%s</div>\n", height, html)
	}
	show := func(c *Chart) string {
		h, err := displayHTML(c)
		if err != nil {
			t.Fatal(err)
		}
		return out(h, DefaultHeight)
	}
	page := func(body string) string {
		// RequireJS's define on the page, as in classic Jupyter (see notebookPage).
		return "<!DOCTYPE html><html><head><meta charset=\"utf-8\">" +
			"<script>function define(deps, factory) { window.amdDefined = true; } define.amd = {};</script>" +
			"</head><body style=\"margin:0\">" + body +
			"<script>if (window.amdDefined) console.error('Uncaught: echarts registered with RequireJS instead of window');</script>" +
			"</body></html>"
	}
	const final = 4000 // ms of virtual time: after every timer, the library's animations done
	// The late library arrives at lateMS, well after the chart gives up on it
	// (libraryWaitMS) and the probe that sees the message (beforeLateMS): the
	// margins absorb the virtual time that passes between the scripts that
	// set these timers on a loaded machine.
	const lateMS, beforeLateMS = 3000, 2400
	norms := func() *Chart { return VectorNorms([]float64{1, 2, 3, 2.5, 4}) }
	kept := func() *Chart {
		return KeptVsGenerated(map[string]int{"compliant": 10, "refusal": 10}, map[string]int{"compliant": 8, "refusal": 10})
	}
	sample := map[string]func() *Chart{}
	for _, s := range samples() {
		sample[s.name] = s.chart
	}
	lib := out(libraryHTML(), initHeight)
	// The late library waits in a <template> and goes in as JupyterLab adds
	// an output: the markup, then each <script> re-created so that it runs.
	late := "<template id=\"late\">" + libraryHTML() + "</template><div id=\"latebox\" style=\"height:" +
		fmt.Sprint(initHeight) + "px;overflow:hidden\"></div>" +
		`<script>setTimeout(function () {
  var box = document.getElementById("latebox");
  box.innerHTML = document.getElementById("late").innerHTML;
  box.querySelectorAll("script").forEach(function (old) {
    var s = document.createElement("script");
    s.textContent = old.textContent;
    old.replaceWith(s);
  });
}, ` + fmt.Sprint(lateMS) + `);</script>`
	return []libraryPage{
		{
			file:   "notebook-init-first.html",
			html:   page(lib + show(norms()) + show(kept()) + probe("init-first", final)),
			height: initHeight + 2*DefaultHeight,
			drawn:  []placed{{NameVectorNorms, initHeight}, {NameKeptVsGenerated, initHeight + DefaultHeight}},
			want:   map[string][]string{"init-first": {"", ""}},
		},
		{
			file:   "notebook-init-last.html",
			html:   page(show(sample[NameLayerScores]()) + show(sample[NameCosineHeatmap]()) + lib + probe("init-last", final)),
			height: 2*DefaultHeight + initHeight,
			drawn:  []placed{{NameLayerScores, 0}, {NameCosineHeatmap, DefaultHeight}},
			want:   map[string][]string{"init-last": {"", ""}},
		},
		{
			file:   "notebook-init-late.html",
			html:   page(show(sample[NameRefusalRates]()) + late + probe("late-before", beforeLateMS) + probe("late-after", final)),
			height: DefaultHeight + initHeight,
			drawn:  []placed{{NameRefusalRates, 0}},
			want:   map[string][]string{"late-before": {missingLibrary}, "late-after": {""}},
		},
		{
			file:    "notebook-no-init.html",
			html:    page(show(norms()) + probe("no-init", final)),
			height:  DefaultHeight,
			message: []int{0},
			want:    map[string][]string{"no-init": {missingLibrary}},
		},
	}
}

// probe is a script that logs, at ms of virtual time, the canvases and text
// of each chart <div> on its page, as "RKSTATE label [...]".
func probe(label string, ms int) string {
	return fmt.Sprintf(`<script>setTimeout(function () {
  var s = [];
  document.querySelectorAll(".refusalkit-chart").forEach(function (el) {
    s.push({canvases: el.querySelectorAll("canvas").length, text: el.textContent});
  });
  console.log("RKSTATE %s " + JSON.stringify(s));
}, %d);</script>`, label, ms)
}

// chartState is what probe logs of one chart <div>.
type chartState struct {
	Canvases int    `json:"canvases"`
	Text     string `json:"text"`
}

var probeLine = regexp.MustCompile(`RKSTATE (\S+) (\[.*\])`)

// probeStates reads the probes' lines from Chromium's console log.
func probeStates(t *testing.T, console string) map[string][]chartState {
	states := map[string][]chartState{}
	for _, m := range consoleLine.FindAllStringSubmatch(console, -1) {
		p := probeLine.FindStringSubmatch(m[1])
		if p == nil {
			continue
		}
		var s []chartState
		if err := json.Unmarshal([]byte(p[2]), &s); err != nil {
			t.Errorf("probe %s: %v in %s", p[1], err, p[2])
			continue
		}
		states[p[1]] = s
	}
	return states
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
