// Package charts draws the project's plots with go-echarts, as self-contained
// HTML that loads nothing from the network.
//
// The functions take plain Go values (slices, maps) and return a *Chart:
//
//	LayerScores      per-layer steering score, baseline and selected layer
//	RefusalRates     refusal rate against the activation-addition coefficient
//	KeptVsGenerated  responses generated and kept by the substring filter, per mode
//	VectorNorms      L2 norm of the refusal vector at every layer
//	CosineHeatmap    cosine similarity of the vector between every pair of layers
//
// from.go adds adapters from refusalkit's values (a runs.Run charts the files
// of a run folder with them). A chart is written with Render or WriteHTML,
// and shown in a GoNB notebook with Display, after one call to Init.
//
// Offline by construction: go-echarts' own renderer puts
// <script src="https://go-echarts.github.io/.../echarts.min.js"> in the page
// head. This package uses go-echarts only to build the ECharts option (the
// JSON that the chart's JSONNotEscaped returns) and writes the page itself:
// the ECharts library, embedded from assets/echarts.min.js, goes into an inline
// <script>, then a second inline <script> calls echarts.init and setOption. A
// Content-Security-Policy meta tag (default-src 'none') makes the browser
// refuse any network load the page might still attempt. Every page (HTML,
// Render, WriteHTML) and every Fragment carries the library, so each draws
// on its own.
//
// A notebook holds the library once instead (gonb.go): Init displays an
// output with the inlined library, and each Display output is only the
// chart's <div> and a script that draws with the library on the page, or says
// to run the cell that calls Init when the library is not there.
package charts

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Default canvas size in CSS pixels, go-echarts' own default.
const (
	DefaultWidth  = 900
	DefaultHeight = 500
)

// Chart is one ECharts chart, ready to render. The zero size means
// DefaultWidth × DefaultHeight. A Chart made from invalid input carries the
// error, which Render, WriteHTML, HTML, Fragment and Display return, so a
// notebook cell can stay one line: charts.Display(charts.LayerScores(...)).
type Chart struct {
	Title         string // page title
	Width, Height int    // canvas size in CSS pixels

	spec optioner
	err  error
}

// optioner is what every go-echarts chart type (Bar, Line, HeatMap, ...) offers.
type optioner interface {
	Validate()
	JSONNotEscaped() template.HTML
}

// NamedChart is a chart with a file-name-friendly name (no extension).
type NamedChart struct {
	Name  string
	Chart *Chart
}

func newChart(title string, spec optioner) *Chart { return &Chart{Title: title, spec: spec} }

func failed(format string, args ...any) *Chart {
	return &Chart{err: fmt.Errorf("charts: "+format, args...)}
}

// Err reports why the chart could not be made, or nil.
func (c *Chart) Err() error {
	if c == nil {
		return fmt.Errorf("charts: nil chart")
	}
	return c.err
}

// funcMarkers are the markers go-echarts puts around JavaScript functions
// (opts.FuncOpts) so they survive JSON encoding; its renderer strips them the
// same way.
var funcMarkers = regexp.MustCompile(`(__f__")|("__f__)|(__f__)`)

// Option returns the ECharts option as JavaScript source: JSON, except that
// formatter functions appear as code.
func (c *Chart) Option() (string, error) {
	if err := c.Err(); err != nil {
		return "", err
	}
	c.spec.Validate()
	js := strings.TrimSpace(string(c.spec.JSONNotEscaped()))
	if js == "" {
		// JSONNotEscaped drops the encoding error; the inputs are sanitised
		// (no NaN or Inf), so this means a bug here.
		return "", fmt.Errorf("charts: chart %q has options that do not encode as JSON", c.Title)
	}
	js = funcMarkers.ReplaceAllString(js, "")
	// The option sits inside a <script> element: "</script" or "<!--" in a
	// title or label would end it early. "<\/" and "<\!--" mean the same in JS.
	js = strings.ReplaceAll(js, "</", `<\/`)
	js = strings.ReplaceAll(js, "<!--", `<\!--`)
	return js, nil
}

// libraryScript is the inline <script> that defines window.echarts. The
// library is wrapped in a function whose parameters shadow define, exports and
// module: where RequireJS is loaded (classic Jupyter), the library's UMD
// header would otherwise register an AMD module and never set window.echarts.
// The guard skips re-evaluating it when an earlier chart on the page (another
// notebook cell) already did.
func libraryScript() string {
	var b strings.Builder
	b.Grow(len(echartsJS) + 256)
	b.WriteString("<script>/* Apache ECharts ")
	b.WriteString(EChartsVersion)
	b.WriteString(" (Apache-2.0), inlined by refusalkit/charts */\n")
	b.WriteString("if(typeof window.echarts===\"undefined\"){(function(define,exports,module){\n")
	b.WriteString(echartsJS)
	b.WriteString("\n}).call(window);}\n</script>\n")
	return b.String()
}

// layout returns what the chart's <div> needs: a fresh element id, the
// canvas size and the option.
func (c *Chart) layout() (id string, w, h int, option string, err error) {
	option, err = c.Option()
	if err != nil {
		return "", 0, 0, "", err
	}
	w, h = c.Width, c.Height
	if w <= 0 {
		w = DefaultWidth
	}
	if h <= 0 {
		h = DefaultHeight
	}
	return elementID("rkchart_"), w, h, option, nil
}

// chartDiv is the element a chart draws into. Fixed pixel sizes: ECharts
// reads the size at init time, and a notebook output area may not be laid out
// yet.
func chartDiv(id string, w, h int) string {
	return fmt.Sprintf(`<div id="%s" class="refusalkit-chart" style="width:%dpx;height:%dpx;background:#fff;"></div>
`, id, w, h)
}

// body returns the chart's <div> and the inline <script> that draws it with
// the window.echarts an earlier <script> defined.
func (c *Chart) body() (string, error) {
	id, w, h, option, err := c.layout()
	if err != nil {
		return "", err
	}
	return chartDiv(id, w, h) + fmt.Sprintf(`<script>
(function(){
  var chart = echarts.init(document.getElementById(%q), null, {renderer: "canvas"});
  chart.setOption(%s);
})();
</script>
`, id, option), nil
}

// Fragment returns HTML to embed in another page: the inline library, the
// chart's <div> and its script, so it draws on its own. (Display sends a
// notebook less: the chart without the library, which Init sent once.)
func (c *Chart) Fragment() (string, error) {
	body, err := c.body()
	if err != nil {
		return "", err
	}
	return libraryScript() + body, nil
}

// csp forbids every load from outside the page itself: only inline scripts
// and styles, and data: images (ECharts' "save as image" makes those).
const csp = `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:`

// HTML returns the chart as a complete, self-contained HTML page.
func (c *Chart) HTML() (string, error) {
	body, err := c.body()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString(`<meta http-equiv="Content-Security-Policy" content="` + csp + "\">\n")
	b.WriteString("<title>" + html.EscapeString(c.Title) + "</title>\n")
	b.WriteString(libraryScript())
	b.WriteString("</head>\n<body style=\"margin:0;background:#fff;\">\n")
	b.WriteString(body)
	b.WriteString("</body>\n</html>\n")
	return b.String(), nil
}

// Render writes the chart as a self-contained HTML page.
func (c *Chart) Render(w io.Writer) error {
	page, err := c.HTML()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, page)
	return err
}

// WriteHTML writes the chart's page to path (creating its folder), replacing
// the file atomically.
func (c *Chart) WriteHTML(path string) error {
	page, err := c.HTML()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.WriteString(tmp, page); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// MustWriteHTML is WriteHTML for notebooks: it panics on error.
func (c *Chart) MustWriteHTML(path string) {
	if err := c.WriteHTML(path); err != nil {
		panic(err)
	}
}

// elementID returns a fresh element id: outputs from different notebook
// cells share one page, so ids must not repeat.
func elementID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + hex.EncodeToString(b[:])
}
