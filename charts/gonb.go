package charts

import (
	"fmt"
	"strconv"

	"github.com/janpfeifer/gonb/gonbui"
)

// A notebook loads the ~1 MB ECharts library once, with Init, and each
// Display output carries only its chart. Every GoNB cell runs as a process of
// its own, so nothing in Go memory connects the two: they meet in the browser
// page, through window.__refusalkitECharts, which whichever output runs first
// creates:
//
//	{ready: Promise resolved with window.echarts, resolve: its resolve function}
//
// Init's output defines window.echarts (unless the page already has it) and
// resolves ready. A chart's output draws at once when window.echarts is
// there, and otherwise waits on ready: a page can show outputs out of order
// (a cell rerun above, lazy rendering). When the library has not come after
// libraryWaitMS, the chart's <div> says to run the cell that calls Init,
// and the chart still draws if the library comes later.

// libraryWaitMS is how long a chart waits before saying that the library is
// missing. A saved notebook reopened renders its outputs in document order,
// so there the library, in an early cell, is on the page before any chart.
const libraryWaitMS = 2000

// missingLibrary is the line a chart shows when the library never came.
const missingLibrary = "refusalkit/charts: ECharts is not loaded on this page: " +
	"run the notebook cell that calls charts.Init() (once, before any chart)."

// loaderJS gets window.__refusalkitECharts as L, creating it if this output
// runs first.
const loaderJS = `var L = window.__refusalkitECharts || (window.__refusalkitECharts = (function () {
    var resolve, ready = new Promise(function (r) { resolve = r; });
    return {ready: ready, resolve: resolve};
  })());`

// libraryHTML is what Init displays: the inline library (libraryScript, as
// in Fragment and HTML), then a script that resolves the loader and writes a
// one-line status into the output.
func libraryHTML() string {
	id := elementID("rklib_")
	return fmt.Sprintf(`<div id="%s" class="refusalkit-echarts" style="font:12px sans-serif;color:#777;"></div>
`, id) + libraryScript() + fmt.Sprintf(`<script>
(function(){
  %s
  var el = document.getElementById(%q);
  if (window.echarts && window.echarts.init) {
    L.resolve(window.echarts);
    if (el) el.textContent = "refusalkit/charts: ECharts " + window.echarts.version + " loaded for this notebook's charts.";
  } else if (el) {
    el.textContent = "refusalkit/charts: ECharts failed to load (see the browser console).";
  }
})();
</script>
`, loaderJS, id)
}

// displayHTML is what Display shows for c: the chart's <div> and a script
// that draws it with the library Init put on the page, waiting for it if
// need be; no library.
func displayHTML(c *Chart) (string, error) {
	id, w, h, option, err := c.layout()
	if err != nil {
		return "", err
	}
	return chartDiv(id, w, h) + fmt.Sprintf(`<script>
(function(){
  var id = %q;
  function draw(echarts) {
    var el = document.getElementById(id);
    if (!el || el.getAttribute("data-drawn")) return;
    el.setAttribute("data-drawn", "1");
    el.textContent = "";
    echarts.init(el, null, {renderer: "canvas"}).setOption(%s);
  }
  if (window.echarts && window.echarts.init) { draw(window.echarts); return; }
  %s
  L.ready.then(draw);
  setTimeout(function () {
    var el = document.getElementById(id);
    if (!el || el.getAttribute("data-drawn")) return;
    var p = document.createElement("p");
    p.className = "refusalkit-chart-missing";
    p.style.cssText = "margin:0;padding:8px;font:14px sans-serif;color:#b00020;";
    p.textContent = %s;
    el.textContent = "";
    el.appendChild(p);
  }, %d);
})();
</script>
`, id, option, loaderJS, strconv.Quote(missingLibrary), libraryWaitMS), nil
}

// Init puts the ECharts library on the notebook's page, for every chart that
// Display shows. Call it once, in an early cell, before any Display:
//
//	%%
//	charts.Init()
//
// Under GoNB it displays one output holding the inlined library (~1 MB;
// nothing is fetched) and a one-line status; outside GoNB it does nothing.
// Running it again is harmless: the page keeps the library it has. The output
// must stay in the saved notebook, since a notebook reopened later draws its
// charts from it; without it each chart says to run this cell.
func Init() {
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(libraryHTML())
	}
}

// Display shows the chart as the output of the current GoNB notebook cell:
// the chart's <div> and a small script (a few KB; nothing is fetched), which
// draws with the library that Init put on the page, earlier or later. If the
// library has not come after two seconds, the <div> says to run the cell
// that calls Init. Outside GoNB Display only checks the chart and returns
// its error, so scripts that share cells with notebooks still run.
//
// To embed a chart that draws on its own, use Fragment (or HTML for a page).
func Display(c *Chart) error {
	out, err := displayHTML(c)
	if err != nil {
		return err
	}
	if gonbui.IsNotebook {
		gonbui.DisplayHTML(out)
	}
	return nil
}

// MustDisplay is Display for notebooks: it panics on error.
func MustDisplay(c *Chart) {
	if err := Display(c); err != nil {
		panic(err)
	}
}

// DisplayAll displays every chart in order, stopping at the first error.
func DisplayAll(cs []NamedChart) error {
	for _, nc := range cs {
		if err := Display(nc.Chart); err != nil {
			return err
		}
	}
	return nil
}
