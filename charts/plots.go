package charts

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// Colours: ECharts' default palette, so the pages look like other go-echarts output.
const (
	colorMain     = "#5470c6" // bars and lines
	colorSelected = "#ee6666" // the selected layer
	colorKept     = "#91cc75" // responses kept by the filter
	colorMuted    = "#9aa3b5" // generated-but-unfiltered counts, the non-steerable last row
	colorBaseline = "#555555"
)

// diverging is a red-white-blue scale (ColorBrewer RdBu, reversed so that
// +1 is red) for values in [-1, 1].
var diverging = []string{"#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"}

// finite returns v, or "-" (ECharts' "no data") for NaN and ±Inf, which JSON cannot hold.
func finite(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return v
}

// jsFunc marks JavaScript source as code, not a string, in the option.
// Use single quotes inside: the JSON encoding escapes double quotes.
func jsFunc(src string) string { return string(opts.FuncOpts(src)) }

func title(text, sub string) charts.GlobalOpts {
	return charts.WithTitleOpts(opts.Title{Title: text, Subtitle: sub, Left: "center", Top: "8"})
}

// LayerScores charts the steering score of every layer (x: layer index in
// increasing order; y: the mean refusal score, in log-odds of the refusal
// tokens, with the layer's refusal vector added to the stream entering that
// block), a dashed line at the unsteered baseline refusal score, and the
// selected layer in red with a pin. layers and scores are parallel and may come
// in any order (layer_selection_scores.json lists them best first). selected < 0
// marks no layer; otherwise it must be one of layers.
func LayerScores(baseline float64, layers []int, scores []float64, selected int) *Chart {
	if len(layers) != len(scores) {
		return failed("LayerScores: %d layers but %d scores", len(layers), len(scores))
	}
	if len(layers) == 0 {
		return failed("LayerScores: no layers to chart")
	}
	order := make([]int, len(layers))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return layers[order[a]] < layers[order[b]] })
	found := selected < 0
	xs := make([]string, len(order))
	data := make([]opts.BarData, len(order))
	var selScore float64
	for k, i := range order {
		if k > 0 && layers[i] == layers[order[k-1]] {
			return failed("LayerScores: layer %d appears twice", layers[i])
		}
		xs[k] = strconv.Itoa(layers[i])
		data[k] = opts.BarData{Value: finite(scores[i])}
		if layers[i] == selected {
			found, selScore = true, scores[i]
			data[k].ItemStyle = &opts.ItemStyle{Color: colorSelected}
		}
	}
	if !found {
		return failed("LayerScores: selected layer %d is not among the %d scored layers", selected, len(layers))
	}

	sub := fmt.Sprintf("baseline (no steering) %.3f", baseline)
	if selected >= 0 {
		sub += fmt.Sprintf(" · selected layer %d (red): %.3f", selected, selScore)
	}
	// ECharts leaves markLines out of the axis range: stretch it to show the baseline.
	baselineOK := !math.IsNaN(baseline) && !math.IsInf(baseline, 0)
	b := 0.0
	if baselineOK {
		b = baseline
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		title("Per-layer steering score", sub),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithGridOpts(opts.Grid{Left: "90", Right: "40", Top: "80", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "layer (vector added to the stream entering this block)",
			NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "steering score (log-odds of refusal tokens)",
			NameLocation: "middle", NameGap: 55,
			Min: opts.FuncOpts(fmt.Sprintf("function(v){return Math.floor(Math.min(0, v.min, %g));}", b)),
			Max: opts.FuncOpts(fmt.Sprintf("function(v){return Math.ceil(Math.max(0, v.max, %g));}", b))}),
	)
	series := []charts.SeriesOpts{charts.WithItemStyleOpts(opts.ItemStyle{Color: colorMain})}
	if baselineOK {
		series = append(series,
			charts.WithMarkLineNameYAxisItemOpts(opts.MarkLineNameYAxisItem{Name: "baseline", YAxis: baseline}),
			charts.WithMarkLineStyleOpts(opts.MarkLineStyle{Symbol: []string{"none", "none"},
				Label:     &opts.Label{Show: opts.Bool(true), Position: "insideEndTop", Formatter: "baseline {c}"},
				LineStyle: &opts.LineStyle{Color: colorBaseline, Type: "dashed", Width: 2}}))
	}
	if selected >= 0 && !math.IsNaN(selScore) && !math.IsInf(selScore, 0) {
		series = append(series, charts.WithMarkPointNameCoordItemOpts(opts.MarkPointNameCoordItem{
			Name: "selected", Coordinate: []any{strconv.Itoa(selected), selScore}, Value: "L" + strconv.Itoa(selected),
			Symbol: "pin", SymbolSize: 44, ItemStyle: &opts.ItemStyle{Color: colorSelected}}))
	}
	bar.SetXAxis(xs).AddSeries("steering score", data, series...)
	return newChart("Per-layer steering score", bar)
}

// RefusalRates charts the refusal rate (refusals/totals, by the substring
// judge) against the activation-addition coefficient, one point per
// coefficient, labelled with the counts ("12/20"). The three slices are
// parallel, in any order.
func RefusalRates(coeffs []float64, refusals []int, totals []int) *Chart {
	if len(coeffs) != len(refusals) || len(coeffs) != len(totals) {
		return failed("RefusalRates: %d coefficients, %d refusal counts and %d totals", len(coeffs), len(refusals), len(totals))
	}
	if len(coeffs) == 0 {
		return failed("RefusalRates: no coefficients to chart")
	}
	order := make([]int, len(coeffs))
	for i := range order {
		order[i] = i
		if math.IsNaN(coeffs[i]) || math.IsInf(coeffs[i], 0) {
			return failed("RefusalRates: coefficient %v is not a number", coeffs[i])
		}
		if totals[i] < 0 || refusals[i] < 0 || refusals[i] > totals[i] {
			return failed("RefusalRates: %d refusals out of %d at coefficient %g", refusals[i], totals[i], coeffs[i])
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return coeffs[order[a]] < coeffs[order[b]] })
	data := make([]opts.LineData, len(order))
	for k, i := range order {
		var rate any = "-"
		if totals[i] > 0 {
			rate = float64(refusals[i]) / float64(totals[i])
		}
		// [x, y, refusals, total]: ECharts plots the first two, formatters read all four.
		data[k] = opts.LineData{Value: []any{coeffs[i], rate, refusals[i], totals[i]}}
	}
	line := charts.NewLine()
	line.SetGlobalOptions(
		title("Refusal rate vs activation-addition coefficient", "labels: refusals / test prompts (substring judge)"),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item",
			Formatter: opts.FuncOpts("function(p){var v=p.value;return 'coefficient '+v[0]+'<br/>refused '+v[2]+'/'+v[3]+(v[3]>0?' ('+Math.round(100*v[1])+'%)':'');}")}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "50", Top: "80", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "coefficient c (c·v added to the stream entering the selected layer)",
			NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "refusal rate", NameLocation: "middle", NameGap: 50,
			Min: 0, Max: 1, AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts("function(v){return Math.round(v*100)+'%';}")}}),
	)
	line.AddSeries("refusal rate", data,
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), Symbol: "circle", SymbolSize: 10}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorSelected}),
		charts.WithLineStyleOpts(opts.LineStyle{Color: colorSelected, Width: 3}),
		charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "top",
			Formatter: jsFunc("function(p){return p.value[2]+'/'+p.value[3];}")}),
	)
	return newChart("Refusal rate vs coefficient", line)
}

// modeOrder lists "compliant" and "refusal" first, then any other keys sorted.
func modeOrder(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var extra []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] && k != "compliant" && k != "refusal" {
				extra = append(extra, k)
			}
			seen[k] = true
		}
	}
	sort.Strings(extra)
	var out []string
	for _, k := range []string{"compliant", "refusal"} {
		if seen[k] {
			out = append(out, k)
		}
	}
	return append(out, extra...)
}

// KeptVsGenerated charts, per mode ("compliant", "refusal"), how many
// responses were generated and how many the substring filter kept for the
// refusal vector, as grouped bars; the kept bar's label gives the share kept.
func KeptVsGenerated(generated, kept map[string]int) *Chart {
	modes := modeOrder(generated, kept)
	if len(modes) == 0 {
		return failed("KeptVsGenerated: no modes to chart")
	}
	gen := make([]opts.BarData, len(modes))
	kep := make([]opts.BarData, len(modes))
	for i, m := range modes {
		g, k := generated[m], kept[m]
		if g < 0 || k < 0 || k > g {
			return failed("KeptVsGenerated: %s mode kept %d of %d generated responses", m, k, g)
		}
		gen[i] = opts.BarData{Value: g}
		label := strconv.Itoa(k)
		if g > 0 {
			label = fmt.Sprintf("%d (%.0f%%)", k, 100*float64(k)/float64(g))
		}
		kep[i] = opts.BarData{Value: k, Label: &opts.Label{Show: opts.Bool(true), Position: "top", Formatter: label}}
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		title("Responses generated and kept by the substring filter", "kept: compliant responses with no refusal phrase, refusal responses with one"),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "55"}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "40", Top: "100", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "generation mode", NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "responses", NameLocation: "middle", NameGap: 50}),
	)
	bar.SetXAxis(modes).
		AddSeries("generated", gen, charts.WithItemStyleOpts(opts.ItemStyle{Color: colorMuted}),
			charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "top"})).
		AddSeries("kept", kep, charts.WithItemStyleOpts(opts.ItemStyle{Color: colorKept}))
	return newChart("Kept vs generated responses", bar)
}

// VectorNorms charts the L2 norm of the refusal vector at every layer:
// layer 0 is the embedding output (the stream entering block 0), layer i the
// stream entering block i, and the last layer the final hidden state, drawn
// grey because no block follows it to steer.
func VectorNorms(norms []float64) *Chart {
	if len(norms) == 0 {
		return failed("VectorNorms: no rows to chart")
	}
	last := len(norms) - 1
	xs := make([]string, len(norms))
	data := make([]opts.BarData, len(norms))
	for i, n := range norms {
		xs[i] = strconv.Itoa(i)
		data[i] = opts.BarData{Value: finite(n)}
		if i == last && last > 0 {
			data[i].ItemStyle = &opts.ItemStyle{Color: colorMuted}
		}
	}
	tooltip := fmt.Sprintf("function(p){var i=p.dataIndex,n=%d;"+
		"var w=i===0?'embedding output (stream entering block 0)':(i===n?'final hidden state (not steerable)':'stream entering block '+i);"+
		"return 'layer '+i+': '+w+'<br/>L2 norm '+(typeof p.value==='number'?p.value.toFixed(4):p.value);}", last)
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		title("Refusal vector norm per layer",
			fmt.Sprintf("layer 0 = embeddings · layer i = stream entering block i · layer %d = final hidden state (grey)", last)),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item", Formatter: opts.FuncOpts(tooltip)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "40", Top: "80", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "layer (row of refusal_vector)",
			NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "L2 norm", NameLocation: "middle", NameGap: 55}),
	)
	bar.SetXAxis(xs).AddSeries("L2 norm", data, charts.WithItemStyleOpts(opts.ItemStyle{Color: colorMain}))
	return newChart("Refusal vector norms", bar)
}

// CosineSimilarities returns the cosine similarity between every pair of
// rows, computed in float64; NaN where a row is all zeros.
func CosineSimilarities(vectors [][]float32) [][]float64 {
	norms := make([]float64, len(vectors))
	for i, v := range vectors {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		norms[i] = math.Sqrt(s)
	}
	out := make([][]float64, len(vectors))
	for i := range vectors {
		out[i] = make([]float64, len(vectors))
	}
	for i := range vectors {
		for j := i; j < len(vectors); j++ {
			c := math.NaN()
			if norms[i] > 0 && norms[j] > 0 {
				var dot float64
				for d := range vectors[i] {
					dot += float64(vectors[i][d]) * float64(vectors[j][d])
				}
				c = max(-1, min(1, dot/(norms[i]*norms[j]))) // rounding can step past ±1
			}
			out[i][j], out[j][i] = c, c
		}
	}
	return out
}

// CosineHeatmap charts the cosine similarity between the refusal vector's
// rows (one per layer, as in VectorNorms) for every pair,
// as a symmetric heat map on a fixed -1..1 colour scale.
func CosineHeatmap(vectors [][]float32) *Chart {
	n := len(vectors)
	if n == 0 {
		return failed("CosineHeatmap: no vectors to chart")
	}
	for i, v := range vectors {
		if len(v) == 0 || len(v) != len(vectors[0]) {
			return failed("CosineHeatmap: row %d has %d values, row 0 has %d", i, len(v), len(vectors[0]))
		}
	}
	cos := CosineSimilarities(vectors)
	labels := make([]string, n)
	for i := range labels {
		labels[i] = strconv.Itoa(i)
	}
	data := make([]opts.HeatMapData, 0, n*n)
	for i := range n {
		for j := range n {
			var v any = "-"
			if !math.IsNaN(cos[i][j]) {
				v = math.Round(cos[i][j]*1e4) / 1e4 // 4 decimals: plenty for a colour, keeps the page small
			}
			data = append(data, opts.HeatMapData{Value: []any{i, j, v}})
		}
	}
	axis := func(name string) (opts.XAxis, opts.YAxis) {
		return opts.XAxis{Type: "category", Data: labels, Name: name, NameLocation: "middle", NameGap: 30,
				SplitArea: &opts.SplitArea{Show: opts.Bool(true)}},
			opts.YAxis{Type: "category", Data: labels, Name: name, NameLocation: "middle", NameGap: 35,
				Inverse: opts.Bool(true), SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}
	}
	xa, ya := axis("layer (row of refusal_vector)")
	hm := charts.NewHeatMap()
	hm.SetGlobalOptions(
		title("Cosine similarity of the refusal vector between layers",
			fmt.Sprintf("layers 0..%d: 0 = embeddings, i = stream entering block i, %d = final hidden state", n-1, n-1)),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item",
			Formatter: opts.FuncOpts("function(p){var v=p.value;return 'layers '+v[0]+' and '+v[1]+': cosine '+v[2];}")}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "110", Top: "80", Bottom: "60"}),
		charts.WithXAxisOpts(xa),
		charts.WithYAxisOpts(ya),
		charts.WithVisualMapOpts(opts.VisualMap{Calculable: opts.Bool(true), Min: -1, Max: 1, Orient: "vertical",
			Right: "10", Top: "center", InRange: &opts.VisualMapInRange{Color: diverging}}),
	)
	series := []charts.SeriesOpts{}
	if n <= 12 { // small enough to print the values in the cells
		series = append(series, charts.WithLabelOpts(opts.Label{Show: opts.Bool(true),
			Formatter: jsFunc("function(p){var c=p.value[2];return typeof c==='number'?c.toFixed(2):'';}")}))
	}
	hm.AddSeries("cosine similarity", data, series...)
	return newChart("Cosine similarity between layers", hm)
}

// SideEffectPoint is one coefficient of a sweep: its refusal rate and the
// side effects' means over its completions.
type SideEffectPoint struct {
	Coefficient     float64
	RefusalRate     float64
	KL              float64 // nats, against the unsteered model
	Perplexity      float64 // under the unsteered model
	Repetition      float64 // share of repeated token 3-grams
	DegenerateShare float64 // share of empty or looping completions
}

// SideEffects charts, against the coefficient, the refusal rate next to
// what steering costs: the shares (refusal rate, repetition, degenerate
// completions) on the left axis, and on the right one, in nats per token,
// the KL and the log perplexity (the mean negative log-likelihood). Points
// in any order.
func SideEffects(points []SideEffectPoint) *Chart {
	if len(points) == 0 {
		return failed("SideEffects: no coefficients to chart")
	}
	ps := slices.Clone(points)
	sort.SliceStable(ps, func(a, b int) bool { return ps[a].Coefficient < ps[b].Coefficient })
	series := func(f func(SideEffectPoint) float64) []opts.LineData {
		out := make([]opts.LineData, len(ps))
		for i, p := range ps {
			out[i] = opts.LineData{Value: []any{p.Coefficient, finite(f(p))}}
		}
		return out
	}
	line := charts.NewLine()
	line.SetGlobalOptions(
		title("Refusal rate and side effects vs coefficient", "KL and perplexity against the unsteered model, on the test prompts"),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "45"}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "90", Top: "90", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "coefficient c", NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "share", NameLocation: "middle", NameGap: 50, Min: 0, Max: 1,
			AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts("function(v){return Math.round(v*100)+'%';}")}}),
	)
	line.ExtendYAxis(opts.YAxis{Type: "value", Name: "nats per token", Position: "right", NameLocation: "middle", NameGap: 40})
	add := func(name, color string, axis int, dashed bool, f func(SideEffectPoint) float64) {
		style := opts.LineStyle{Color: color, Width: 2}
		if dashed {
			style.Type = "dashed"
		}
		line.AddSeries(name, series(f),
			charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), Symbol: "circle", SymbolSize: 8, YAxisIndex: axis}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: color}), charts.WithLineStyleOpts(style))
	}
	add("refusal rate", colorSelected, 0, false, func(p SideEffectPoint) float64 { return p.RefusalRate })
	add("repetition", colorMuted, 0, true, func(p SideEffectPoint) float64 { return p.Repetition })
	add("degenerate", colorBaseline, 0, true, func(p SideEffectPoint) float64 { return p.DegenerateShare })
	add("KL", colorMain, 1, false, func(p SideEffectPoint) float64 { return p.KL })
	// log perplexity: the mean negative log-likelihood, in the KL's unit.
	add("log perplexity", colorKept, 1, false, func(p SideEffectPoint) float64 { return math.Log(p.Perplexity) })
	return newChart("Refusal rate and side effects vs coefficient", line)
}

// AblationRates charts, per prompt set, the refusal rate without and with
// directional ablation as grouped bars, each labelled with its counts
// ("12/20"). The slices are parallel: set names, then refusals and totals
// without ablation, then with it.
func AblationRates(sets []string, baseRefusals, baseTotals, ablRefusals, ablTotals []int, layer int) *Chart {
	n := len(sets)
	if len(baseRefusals) != n || len(baseTotals) != n || len(ablRefusals) != n || len(ablTotals) != n {
		return failed("AblationRates: %d sets but %d, %d, %d and %d counts", n, len(baseRefusals), len(baseTotals), len(ablRefusals), len(ablTotals))
	}
	if n == 0 {
		return failed("AblationRates: no prompt sets to chart")
	}
	bars := func(refusals, totals []int) ([]opts.BarData, error) {
		out := make([]opts.BarData, n)
		for i := range n {
			if totals[i] < 0 || refusals[i] < 0 || refusals[i] > totals[i] {
				return nil, fmt.Errorf("AblationRates: %d refusals out of %d in set %s", refusals[i], totals[i], sets[i])
			}
			var rate any = "-"
			if totals[i] > 0 {
				rate = float64(refusals[i]) / float64(totals[i])
			}
			out[i] = opts.BarData{Value: rate, Label: &opts.Label{Show: opts.Bool(true), Position: "top",
				Formatter: fmt.Sprintf("%d/%d", refusals[i], totals[i])}}
		}
		return out, nil
	}
	base, err := bars(baseRefusals, baseTotals)
	if err != nil {
		return failed("%v", err)
	}
	abl, err := bars(ablRefusals, ablTotals)
	if err != nil {
		return failed("%v", err)
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		title("Refusal rate without and with directional ablation",
			fmt.Sprintf("ablated: the unit direction of refusal_vector[%d], removed everywhere · labels: refusals / prompts (substring judge)", layer)),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "55"}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "40", Top: "100", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "prompt set", NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "refusal rate", NameLocation: "middle", NameGap: 50,
			Min: 0, Max: 1, AxisLabel: &opts.AxisLabel{Formatter: opts.FuncOpts("function(v){return Math.round(v*100)+'%';}")}}),
	)
	bar.SetXAxis(sets).
		AddSeries("without ablation", base, charts.WithItemStyleOpts(opts.ItemStyle{Color: colorMuted})).
		AddSeries("with ablation", abl, charts.WithItemStyleOpts(opts.ItemStyle{Color: colorSelected}))
	return newChart("Refusal rate with ablation", bar)
}

// DirectionCosine charts, at every layer, the cosine similarity between
// the refusal vector's row and another direction's (the reference
// method's), as a line on a fixed -1..1 axis; NaN (a zero-length row) is a
// gap. selected >= 0 marks that layer with a pin.
func DirectionCosine(cosines []float64, selected int) *Chart {
	if len(cosines) == 0 {
		return failed("DirectionCosine: no layers to chart")
	}
	if selected >= len(cosines) {
		return failed("DirectionCosine: selected layer %d is past the %d layers", selected, len(cosines))
	}
	xs := make([]string, len(cosines))
	data := make([]opts.LineData, len(cosines))
	for i, c := range cosines {
		xs[i] = strconv.Itoa(i)
		data[i] = opts.LineData{Value: finite(c)}
	}
	sub := "layer 0 = embeddings · layer i = stream entering block i · last = final hidden state"
	series := []charts.SeriesOpts{
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), Symbol: "circle", SymbolSize: 7}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorMain}),
		charts.WithLineStyleOpts(opts.LineStyle{Color: colorMain, Width: 2}),
	}
	if selected >= 0 && !math.IsNaN(cosines[selected]) && !math.IsInf(cosines[selected], 0) {
		sub = fmt.Sprintf("layer %d (pin): %.3f · ", selected, cosines[selected]) + sub
		series = append(series, charts.WithMarkPointNameCoordItemOpts(opts.MarkPointNameCoordItem{
			Name: "ablated", Coordinate: []any{strconv.Itoa(selected), cosines[selected]}, Value: "L" + strconv.Itoa(selected),
			Symbol: "pin", SymbolSize: 44, ItemStyle: &opts.ItemStyle{Color: colorSelected}}))
	}
	line := charts.NewLine()
	line.SetGlobalOptions(
		title("Cosine similarity with the reference direction per layer", sub),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "40", Top: "80", Bottom: "60"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "layer (row of refusal_vector)", NameLocation: "middle", NameGap: 32}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "cosine similarity", NameLocation: "middle", NameGap: 50, Min: -1, Max: 1}),
	)
	line.SetXAxis(xs).AddSeries("cosine", data, series...)
	return newChart("Cosine with the reference direction", line)
}
