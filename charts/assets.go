package charts

import _ "embed"

// The ECharts library every chart page inlines. It comes from the npm package
// echarts (dist/echarts.min.js, Apache-2.0: assets/LICENSE-echarts,
// assets/NOTICE-echarts, assets/LICENSE-echarts-d3) and is re-fetched and
// checked by tools/setup/echarts.sh, which pins the same version and hash.
const (
	EChartsVersion = "5.6.0"
	echartsSHA256  = "bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1"
)

//go:embed assets/echarts.min.js
var echartsJS string

// EChartsJS returns the embedded echarts.min.js, for callers that want to
// serve or inline the library themselves.
func EChartsJS() string { return echartsJS }
