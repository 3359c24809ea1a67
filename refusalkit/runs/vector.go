package runs

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

const vectorTensorName = "refusal_vector"

// Provenance keys every refusalkit vector file states, whoever made it.
var fixedProvenance = map[string]string{
	"format":    "refusalkit refusal vector",
	"rows":      refusalkit.RowConvention,
	"sign":      "refusal minus compliant (mean over kept refusal responses − mean over kept compliant responses)",
	"operation": "add: steer with coefficient × row i added to the residual stream entering block i, at every position",
}

// ExtractionProvenance is how an extraction made its vector, for the vector
// file's metadata: the method, the counts, the refusal instruction(s), the
// sampling, the seed, the judge, and md's provenance record
// (refusalkit.Provenance.Metadata: the model's hash, the tokenizer, backend,
// dtype, versions and run settings; the model is the "model" key, its
// alias), so that two vector files compared (inspect --compare) say what
// made them differ, and ReadProvenance reads the record back from the
// vector alone.
func ExtractionProvenance(x *refusalkit.Extraction, md Metadata) map[string]string {
	c := x.Config.WithDefaults()
	instrs, _ := json.Marshal(c.RefusalInstructions)
	meta := map[string]string{
		"made_by": "refusalkit extract",
		"method": "difference of means: per kept response, the mean residual stream over its own generated tokens; " +
			"then the mean over refusal-mode responses the judge calls refusals minus the mean over compliant-mode responses it does not",
		"dataset":              refusalkit.DatasetName(c.Dataset),
		"n_queries":            strconv.Itoa(len(x.Queries)),
		"n_completions":        strconv.Itoa(c.NCompletions),
		"max_new_tokens":       strconv.Itoa(c.MaxNewTokens),
		"refusal_instructions": string(instrs),
		"sampling":             c.Sampling.String(),
		"seed":                 strconv.FormatInt(*c.Seed, 10),
		"judge":                c.Judge,
	}
	maps.Copy(meta, md.Provenance.Metadata())
	return meta
}

// VectorMetadata is the metadata SaveVector writes for v: its shape and
// counts, the fixed convention keys, then v.Provenance.
func VectorMetadata(v *refusalkit.RefusalVector) map[string]string {
	meta := map[string]string{}
	for k, val := range v.Provenance {
		meta[k] = val
	}
	for k, val := range fixedProvenance {
		meta[k] = val
	}
	meta["model"], meta["n_layers"], meta["d_model"] = v.Model, strconv.Itoa(v.NLayers), strconv.Itoa(v.DModel)
	meta["n_refusal"], meta["n_compliant"] = strconv.Itoa(v.NRefusal), strconv.Itoa(v.NCompliant)
	if v.Rows != nil {
		rows, _ := json.Marshal(v.Rows)
		meta["rows_with_data"] = string(rows)
	}
	return meta
}

// SaveVector writes refusal_vector.pt and refusal_vector.safetensors into dir,
// atomically; the safetensors metadata carries VectorMetadata(v).
func SaveVector(dir string, v *refusalkit.RefusalVector) error {
	shape := []int{len(v.Data), v.DModel}
	data := v.Flat()
	if err := tensorfile.WriteFileAtomic(filepath.Join(dir, VectorPTFile), func(w io.Writer) error {
		return tensorfile.WritePT(w, data, shape)
	}); err != nil {
		return err
	}
	return WriteVectorFile(filepath.Join(dir, VectorSafetensorsFile), v)
}

// WriteVectorFile writes v as one safetensors file with its metadata, atomically.
func WriteVectorFile(path string, v *refusalkit.RefusalVector) error {
	shape := []int{len(v.Data), v.DModel}
	return tensorfile.WriteFileAtomic(path, func(w io.Writer) error {
		return tensorfile.WriteSafetensors(w, map[string]tensorfile.Float32Tensor{vectorTensorName: {Shape: shape, Data: v.Flat()}}, VectorMetadata(v))
	})
}

// LoadVector reads refusal_vector.safetensors from a run folder
// (refusalkit never unpickles the .pt file).
func LoadVector(dir string) (*refusalkit.RefusalVector, error) {
	path := filepath.Join(dir, VectorSafetensorsFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no refusal vector at %s: give the folder written by `refusalkit extract` (--vector_dir)", path)
	}
	return ReadVectorFile(path)
}

// ReadVectorFile reads a refusal vector safetensors file with its metadata
// (Provenance: every key but the shape and counts).
func ReadVectorFile(path string) (*refusalkit.RefusalVector, error) {
	ts, meta, err := tensorfile.ReadSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("refusal vector %s is unreadable (%v): re-run `refusalkit extract`", path, err)
	}
	t, ok := ts[vectorTensorName]
	if !ok || len(t.Shape) != 2 || t.Shape[0] < 2 || t.Shape[1] < 1 {
		return nil, fmt.Errorf("refusal vector %s has no 2-D %q tensor: re-run `refusalkit extract`", path, vectorTensorName)
	}
	for _, x := range t.Data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("refusal vector %s holds NaN or infinite values: re-run `refusalkit extract`", path)
		}
	}
	v := &refusalkit.RefusalVector{Model: meta["model"], NLayers: t.Shape[0] - 1, DModel: t.Shape[1], Provenance: map[string]string{}}
	v.NRefusal, _ = strconv.Atoi(meta["n_refusal"])
	v.NCompliant, _ = strconv.Atoi(meta["n_compliant"])
	if rows, ok := meta["rows_with_data"]; ok {
		if err := json.Unmarshal([]byte(rows), &v.Rows); err != nil {
			return nil, fmt.Errorf("refusal vector %s: rows_with_data %q is not a list of rows: re-write it", path, rows)
		}
	}
	for k, val := range meta {
		switch k {
		case "model", "n_layers", "d_model", "n_refusal", "n_compliant", "rows_with_data":
		default:
			v.Provenance[k] = val
		}
	}
	v.Data = make([][]float32, t.Shape[0])
	for l := range v.Data {
		v.Data[l] = t.Data[l*v.DModel : (l+1)*v.DModel]
	}
	return v, nil
}

// MustLoadVector is LoadVector for notebooks.
func MustLoadVector(dir string) *refusalkit.RefusalVector {
	v, err := LoadVector(dir)
	if err != nil {
		panic(err)
	}
	return v
}

// ReadProvenance reads the provenance record back from any file refusalkit
// writes one into: metadata.json, eval_summary.json, ablation_summary.json,
// a checkpoint's settings.json (its run digest and settings), or a vector
// .safetensors file (its metadata, refusalkit.ProvenanceFromMetadata); a
// folder is read as its metadata.json. Fields a file written before them
// lacks are left empty.
func ReadProvenance(path string) (*refusalkit.Provenance, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, MetadataFile)
	}
	if strings.HasSuffix(path, ".safetensors") {
		_, meta, err := tensorfile.ReadSafetensors(path)
		if err != nil {
			return nil, fmt.Errorf("refusal vector %s is unreadable (%v): re-run `refusalkit extract`", path, err)
		}
		p, err := refusalkit.ProvenanceFromMetadata(meta)
		if err != nil {
			return nil, fmt.Errorf("refusal vector %s: %v: re-write it", path, err)
		}
		return &p, nil
	}
	var f struct {
		refusalkit.Provenance
		Settings RunSettings `json:"settings"` // a checkpoint's settings.json names them so
	}
	if err := ReadJSON(path, &f); err != nil {
		return nil, err
	}
	if f.RunSettings == nil {
		f.RunSettings = f.Settings
	}
	return &f.Provenance, nil
}
