package refusalkit

import (
	"github.com/refusalkit/refusalkit/internal/buildinfo"
	"github.com/refusalkit/refusalkit/models"
)

// Provenance is what every result file records of where its numbers came
// from, beside its stage's own fields: the model as loaded, the backend and
// dtype it ran in, and the code's versions. One type, filled by one
// function, embedded in metadata.json, eval_summary.json and
// ablation_summary.json under the field names those files always had, so
// files written before it read the same.
type Provenance struct {
	ModelPath  string            `json:"model_path"`
	ModelAlias string            `json:"model_alias"`
	Backend    string            `json:"backend"` // as --backend names it: xla:cpu, xla:cuda, go
	DType      string            `json:"dtype"`   // of weights, activations and KV cache (models.LoadOptions)
	Versions   map[string]string `json:"versions"`
}

// ProvenanceOf is the provenance of results m computes.
func ProvenanceOf(m *models.Model) Provenance {
	return Provenance{ModelPath: m.Path, ModelAlias: m.Alias(), Backend: models.BackendName(m.Backend),
		DType: models.DTypeName(m.DType()), Versions: buildinfo.Versions()}
}
