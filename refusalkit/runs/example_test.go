package runs_test

import (
	"fmt"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
)

// The README's tour: the spec's method at its defaults in the model's run
// folder, each stage saved and reused while what made it matches. (Compiled,
// not run: at the spec's defaults it takes minutes.)
func Example() {
	m := models.MustLoad("smollm2-135m-instruct", nil)
	defer m.Close()
	run := runs.MustOpen(runs.DefaultDir(m.Alias()))
	defer run.Close()
	x := run.MustExtract(m, refusalkit.ExtractConfig{})
	ev := run.MustEvaluate(m, x, refusalkit.EvalConfig{})
	fmt.Println(ev.Summary.SelectedLayer, x.Vector.Norms()[ev.Summary.SelectedLayer])
}
