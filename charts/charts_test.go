package charts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sample is one chart made from small made-up data, with strings its option
// must contain (the series data as the JSON encodes it).
type sample struct {
	name  string
	chart func() *Chart
	data  []string
}

func samples() []sample {
	return []sample{
		{NameLayerScores, func() *Chart {
			// In layer_selection_scores.json order: best first.
			return LayerScores(-2.5, []int{3, 2, 4, 1, 0, 5}, []float64{3.2, 2.8, 1.5, 0.25, -1.75, -2.125}, 3)
		}, []string{`"yAxis":-2.5`, `{"value":3.2,"itemStyle":{"color":"#ee6666"}}`, `{"value":-2.125}`,
			`"data":["0","1","2","3","4","5"]`, `steering score (log-odds of refusal tokens)`, `"coord":["3",3.2]`}},
		{NameRefusalRates, func() *Chart {
			return RefusalRates([]float64{0, 0.5, 1, 2, 5}, []int{2, 5, 12, 17, 19}, []int{20, 20, 20, 20, 20})
		}, []string{`[0,0.1,2,20]`, `[1,0.6,12,20]`, `[5,0.95,19,20]`, `p.value[2]+'/'+p.value[3]`}},
		{NameKeptVsGenerated, func() *Chart {
			return KeptVsGenerated(map[string]int{"compliant": 200, "refusal": 200}, map[string]int{"compliant": 187, "refusal": 198})
		}, []string{`"data":["compliant","refusal"]`, `{"value":200}`, `"formatter":"187 (94%)"`, `"formatter":"198 (99%)"`}},
		{NameVectorNorms, func() *Chart {
			return VectorNorms([]float64{0.5, 1.25, 2.5, 4.75, 3.5, 6})
		}, []string{`{"value":1.25}`, `{"value":4.75}`, `{"value":6,"itemStyle":{"color":"#9aa3b5"}}`}},
		{NameCosineHeatmap, func() *Chart {
			return CosineHeatmap([][]float32{{1, 0, 0}, {1, 1, 0}, {0, 1, 0}, {-1, 0, 0}, {0, 0, 2}})
		}, []string{`[0,0,1]`, `[0,1,0.7071]`, `[1,0,0.7071]`, `[0,3,-1]`, `[4,4,1]`, `"min":-1,"max":1`, `"visualMap"`}},
	}
}

// network matches an element attribute that would load something: any src
// or href, and any http(s) URL in an attribute or CSS url().
var network = regexp.MustCompile(`(?i)(<(script|link|img|iframe|embed|object|source)\b[^>]*\b(src|href)\s*=)|((src|href|srcset|action)\s*=\s*["']?\s*(https?:)?//)|(url\(\s*["']?(https?:)?//)|(@import)`)

func TestRenderIsSelfContained(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			c := s.chart()
			var buf bytes.Buffer
			if err := c.Render(&buf); err != nil {
				t.Fatal(err)
			}
			page := buf.String()
			if !strings.Contains(page, echartsJS) {
				t.Fatal("page does not inline the whole embedded echarts.min.js")
			}
			// The library itself builds markup such as '<img src="' at run time
			// (image symbols, which these charts do not use); it is checked by
			// its hash, so scan the page around it.
			own := strings.Replace(page, echartsJS, "", 1)
			if m := network.FindString(own); m != "" {
				t.Errorf("page loads from the network: %q", m)
			}
			if !strings.Contains(page, `t.version="`+EChartsVersion+`"`) {
				t.Errorf("page lacks the echarts %s version marker", EChartsVersion)
			}
			if !strings.Contains(page, "Content-Security-Policy") || !strings.Contains(page, "default-src 'none'") {
				t.Error("page has no Content-Security-Policy forbidding network loads")
			}
			if strings.Contains(page, "__f__") {
				t.Error("go-echarts' function markers were left in the option")
			}
			if n := strings.Count(own, "<script"); n != 2 {
				t.Errorf("page has %d <script> elements, want 2 (library, chart)", n)
			}
			option, err := c.Option()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range s.data {
				if !strings.Contains(option, d) {
					t.Errorf("option lacks %s:\n%s", d, option)
				}
				if !strings.Contains(page, d) {
					t.Errorf("page lacks %s", d)
				}
			}
			frag, err := c.Fragment()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(frag, "<html") || !strings.Contains(frag, echartsJS) || network.MatchString(strings.Replace(frag, echartsJS, "", 1)) {
				t.Error("fragment should be a self-contained snippet without <html>")
			}
		})
	}
}

func TestEmbeddedLibraryIsPinned(t *testing.T) {
	sum := sha256.Sum256([]byte(echartsJS))
	if got := hex.EncodeToString(sum[:]); got != echartsSHA256 {
		t.Errorf("assets/echarts.min.js has sha256 %s, want %s: run tools/setup/echarts.sh", got, echartsSHA256)
	}
	script, err := os.ReadFile(filepath.Join("..", "tools", "setup", "echarts.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{`ECHARTS_VERSION:-` + EChartsVersion + `}`, `ECHARTS_SHA256:-` + echartsSHA256 + `}`} {
		if !bytes.Contains(script, []byte(pin)) {
			t.Errorf("tools/setup/echarts.sh does not pin %s as charts/assets.go does", pin)
		}
	}
	for _, f := range []string{"LICENSE-echarts", "NOTICE-echarts", "LICENSE-echarts-d3"} {
		if _, err := os.Stat(filepath.Join("assets", f)); err != nil {
			t.Errorf("licence file missing: %v", err)
		}
	}
}

func TestInvalidInputs(t *testing.T) {
	for name, c := range map[string]*Chart{
		"scores length":      LayerScores(0, []int{0, 1}, []float64{1}, 0),
		"no layers":          LayerScores(0, nil, nil, -1),
		"selected missing":   LayerScores(0, []int{0, 1}, []float64{1, 2}, 7),
		"duplicate layer":    LayerScores(0, []int{1, 1}, []float64{1, 2}, 1),
		"rates length":       RefusalRates([]float64{0, 1}, []int{1}, []int{2, 2}),
		"rates none":         RefusalRates(nil, nil, nil),
		"refusals > total":   RefusalRates([]float64{1}, []int{3}, []int{2}),
		"NaN coefficient":    RefusalRates([]float64{math.NaN()}, []int{1}, []int{2}),
		"kept > generated":   KeptVsGenerated(map[string]int{"refusal": 2}, map[string]int{"refusal": 3}),
		"no modes":           KeptVsGenerated(nil, nil),
		"no norms":           VectorNorms(nil),
		"no vectors":         CosineHeatmap(nil),
		"ragged vectors":     CosineHeatmap([][]float32{{1, 2}, {1}}),
		"nil chart":          nil,
		"nil run adapter":    LayerScoresFrom(nil),
		"empty eval summary": RefusalRatesFrom(nil),
		"ablation lengths":   AblationRates([]string{"a", "b"}, []int{1}, []int{1, 1}, []int{0, 0}, []int{1, 1}, 0),
		"ablation none":      AblationRates(nil, nil, nil, nil, nil, 0),
		"ablated > total":    AblationRates([]string{"a"}, []int{0}, []int{1}, []int{2}, []int{1}, 0),
		"no ablation":        AblationRatesFrom(nil),
		"no cosines":         DirectionCosine(nil, -1),
		"cosine layer past":  DirectionCosine([]float64{1}, 3),
		"no cosines file":    DirectionCosineFrom(nil),
	} {
		if c.Err() == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if err := c.Render(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: Render succeeded", name)
		}
		if err := c.WriteHTML(filepath.Join(t.TempDir(), "x.html")); err == nil {
			t.Errorf("%s: WriteHTML succeeded", name)
		}
		if err := Display(c); err == nil {
			t.Errorf("%s: Display succeeded", name)
		}
	}
}

func TestValuesJSONCannotHold(t *testing.T) {
	// NaN and ±Inf become ECharts' "-" (no data) instead of breaking the encoding.
	c := LayerScores(math.NaN(), []int{0, 1, 2}, []float64{1, math.Inf(1), math.NaN()}, 0)
	option, err := c.Option()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(option, `{"value":"-"}`) || strings.Contains(option, "markLine") {
		t.Errorf("want \"-\" values and no baseline line, got\n%s", option)
	}
	option, err = CosineHeatmap([][]float32{{0, 0}, {1, 0}}).Option()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(option, `[0,1,"-"]`) || !strings.Contains(option, `[1,1,1]`) {
		t.Errorf("zero row should give \"-\" cells:\n%s", option)
	}
}

func TestTextCannotEndTheScript(t *testing.T) {
	evil := "</script><script>alert(1)</script><!--"
	c := KeptVsGenerated(map[string]int{evil: 3}, map[string]int{evil: 1})
	c.Title = evil
	page, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	// Inside a <script> element only "</script" (and "<!--", which can hide
	// it) end the element early.
	own := strings.Replace(page, echartsJS, "", 1)
	if strings.Count(own, "</script") != 2 || strings.Contains(own, "<!--") || strings.Contains(own, "<title></script>") {
		t.Errorf("label text escaped its <script> element:\n%s", own)
	}
	if !strings.Contains(page, `<\/script><script>alert(1)<\/script><\!--`) {
		t.Error("label text should survive as <\\/script>...")
	}
}

func TestCosineSimilarities(t *testing.T) {
	v := [][]float32{{3, 4}, {-6, -8}, {4, -3}, {0, 0}, {1e-20, 0}}
	got := CosineSimilarities(v)
	want := [][]float64{
		{1, -1, 0, math.NaN(), 0.6},
		{-1, 1, 0, math.NaN(), -0.6},
		{0, 0, 1, math.NaN(), 0.8},
	}
	for i := range want {
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			if math.IsNaN(w) != math.IsNaN(g) || (!math.IsNaN(w) && math.Abs(g-w) > 1e-12) {
				t.Errorf("cos(%d,%d) = %v, want %v", i, j, g, w)
			}
			if !(math.IsNaN(g) && math.IsNaN(got[j][i])) && got[j][i] != g {
				t.Errorf("cos(%d,%d) = %v but cos(%d,%d) = %v", i, j, g, j, i, got[j][i])
			}
		}
	}
	if math.Abs(got[4][4]-1) > 1e-12 { // float64 accumulation: tiny float32 rows still work
		t.Errorf("cos of a tiny row with itself = %v", got[4][4])
	}
}

func TestWriteHTML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "norms.html")
	c := VectorNorms([]float64{1, 2, 3})
	c.Width, c.Height = 640, 360
	if err := c.WriteHTML(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("width:640px;height:360px;")) || !bytes.HasSuffix(b, []byte("</html>\n")) {
		t.Errorf("unexpected page: size or ending missing")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("WriteHTML left %d files behind, want 1", len(entries))
	}
}

func TestDisplayOutsideNotebook(t *testing.T) {
	// Not under GoNB: Init does nothing, Display only validates.
	Init()
	if err := Display(VectorNorms([]float64{1, 2})); err != nil {
		t.Fatal(err)
	}
}

// maxDisplayBytes bounds a notebook chart output of the samples' size, and
// maxDisplayOverhead what an output adds to its option (the <div> and the
// script): both far below the library's size, so an output that carried the
// library fails.
const (
	maxDisplayBytes    = 20 << 10
	maxDisplayOverhead = 4 << 10
)

// TestNotebookOutputs: Init's output carries the library once; each Display
// output carries its chart and none of the library, however big the chart.
func TestNotebookOutputs(t *testing.T) {
	if len(echartsJS) < 50*maxDisplayBytes {
		t.Fatalf("embedded library is only %d bytes", len(echartsJS))
	}
	lib := libraryHTML()
	if strings.Count(lib, echartsJS) != 1 {
		t.Error("Init's output does not inline the whole library once")
	}
	own := strings.Replace(lib, echartsJS, "", 1)
	if m := network.FindString(own); m != "" {
		t.Errorf("Init's output loads from the network: %q", m)
	}
	if !strings.Contains(own, "window.__refusalkitECharts") || !strings.Contains(own, "L.resolve(window.echarts)") {
		t.Error("Init's output does not resolve the page's loader")
	}
	if strings.Contains(own, "<html") {
		t.Error("Init's output should be a snippet without <html>")
	}

	// Charts as big as a real run makes them: 31 residual-stream boundaries
	// (SmolLM2-135M), a 31×31 heat map.
	rows := make([][]float32, 31)
	norms := make([]float64, len(rows))
	for i := range rows {
		rows[i] = make([]float32, 64)
		for j := range rows[i] {
			rows[i][j] = float32(math.Sin(float64(i*j+i)) * float64(i+1))
		}
		norms[i] = 1.2345678 * float64(i)
	}
	type namedChart struct {
		name  string
		chart *Chart
		small bool // a sample: the whole output must be small
	}
	all := []namedChart{{"31 norms", VectorNorms(norms), true}, {"31×31 heat map", CosineHeatmap(rows), false}}
	for _, s := range samples() {
		all = append(all, namedChart{s.name, s.chart(), true})
	}
	for _, nc := range all {
		out, err := displayHTML(nc.chart)
		if err != nil {
			t.Fatal(err)
		}
		option, err := nc.chart.Option()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: Display output %d bytes (option %d)", nc.name, len(out), len(option))
		if !strings.Contains(out, option) {
			t.Errorf("%s: output lacks the chart's option", nc.name)
		}
		if nc.small && len(out) > maxDisplayBytes {
			t.Errorf("%s: output is %d bytes, want at most %d", nc.name, len(out), maxDisplayBytes)
		}
		if extra := len(out) - len(option); extra > maxDisplayOverhead {
			t.Errorf("%s: output adds %d bytes to the option, want at most %d", nc.name, extra, maxDisplayOverhead)
		}
		if strings.Contains(out, echartsJS[len(echartsJS)/2:len(echartsJS)/2+200]) || strings.Contains(out, `t.version="`) {
			t.Errorf("%s: output carries the library", nc.name)
		}
		if m := network.FindString(out); m != "" {
			t.Errorf("%s: output loads from the network: %q", nc.name, m)
		}
		if n := strings.Count(out, "<script"); n != 1 {
			t.Errorf("%s: output has %d <script> elements, want 1", nc.name, n)
		}
		if !strings.Contains(out, strconv.Quote(missingLibrary)) || !strings.Contains(missingLibrary, "charts.Init()") {
			t.Errorf("%s: output lacks the message naming charts.Init()", nc.name)
		}
	}

	// Label text cannot end the chart's script here either.
	evil := "</script><script>alert(1)</script><!--"
	out, err := displayHTML(KeptVsGenerated(map[string]int{evil: 3}, map[string]int{evil: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "</script") != 1 || strings.Contains(out, "<!--") {
		t.Errorf("label text escaped its <script> element:\n%s", out)
	}
}
