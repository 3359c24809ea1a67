package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/ggufvec"
	"github.com/refusalkit/refusalkit/refusalkit/runs"
	"github.com/refusalkit/refusalkit/refusalkit/tensorfile"
)

// cmdExport writes rows of a vector folder as a llama.cpp control vector (the
// GGUF that llama-cli's --control-vector-scaled and repeng read), each row at
// the llama.cpp layer whose output is the stream the row was measured on
// (refusalkit.LlamaCppIndex).
func cmdExport(args []string) error {
	fs := newFlags("export", "--vector_dir DIR --format llama.cpp [--layer L | --layers A-B] [--coefficient C] --out F.gguf")
	vectorDir := fs.String("vector_dir", "", "folder holding refusal_vector.safetensors, written by 'refusalkit extract' (required)")
	format := fs.String("format", "", "output format: llama.cpp (a control-vector GGUF; required)")
	layer := fs.Int("layer", -1, "the row to export: the residual stream entering block L, 2..n_layers-1 (default: selected_layer of the folder's eval_summary.json)")
	layerRange := fs.String("layers", "", "rows A-B (inclusive) to export instead of one, each at its own llama.cpp layer")
	coeff := fs.Float64("coefficient", 1, "the rows are written multiplied by this (llama-cli's --control-vector-scaled scales them again)")
	modelHint := fs.String("model_hint", "", "controlvector.model_hint (default: the vector's model alias)")
	out := fs.String("out", "", "output file, .gguf (required)")
	overwrite := fs.Bool("overwrite", false, "replace an existing --out")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	layerGiven := false
	fs.Visit(func(f *flag.Flag) { layerGiven = layerGiven || f.Name == "layer" })
	if *vectorDir == "" || *format == "" || *out == "" {
		return usagef("--vector_dir, --format and --out are required (see --help)")
	}
	if *format != "llama.cpp" {
		return usagef("--format must be llama.cpp, got %q", *format)
	}
	if st, err := os.Stat(*vectorDir); err != nil || !st.IsDir() {
		return usagef("--vector_dir %s is not a folder: give the folder written by `refusalkit extract`", *vectorDir)
	}
	if layerGiven && *layerRange != "" {
		return usagef("give --layer or --layers, not both")
	}
	if math.IsNaN(*coeff) || math.IsInf(*coeff, 0) || *coeff == 0 || math.Abs(*coeff) > math.MaxFloat32 {
		return usagef("--coefficient must be a finite number other than 0, got %v", *coeff)
	}
	if !strings.HasSuffix(*out, ".gguf") {
		return usagef("--out %s does not end in .gguf: llama.cpp control vectors are GGUF files", *out)
	}
	if st, err := os.Stat(*out); err == nil {
		if st.IsDir() {
			return usagef("--out %s is a folder: give a file name", *out)
		}
		if !*overwrite {
			return usagef("--out %s exists: choose another name or pass --overwrite", *out)
		}
	}
	if st, err := os.Stat(filepath.Dir(*out)); err != nil || !st.IsDir() {
		return usagef("the folder of --out %s does not exist: create it first", *out)
	}
	if err := checkVectorDir(*vectorDir); err != nil {
		return err
	}
	v, err := runs.LoadVector(*vectorDir)
	if err != nil {
		return usagef("%v", err)
	}
	var rows []int
	switch {
	case *layerRange != "":
		a, b, ok := parseRange(*layerRange)
		if !ok {
			return usagef("--layers %q is not a range A-B of rows (e.g. 2-%d)", *layerRange, v.NLayers-1)
		}
		for r := a; r <= b; r++ {
			rows = append(rows, r)
		}
	case layerGiven:
		rows = []int{*layer}
	default:
		l, from, ok := selectedLayer(*vectorDir)
		if !ok {
			return usagef("--layer is required: %s holds no %s to take the selected layer from (run `refusalkit evaluate` first, or give --layer or --layers)", *vectorDir, runs.EvalSummaryFile)
		}
		rows = []int{l}
		fmt.Fprintf(os.Stderr, "refusalkit export: row %d, the selected_layer of %s\n", l, from)
	}
	hint := *modelHint
	if hint == "" {
		hint = v.Model
	}
	cv, err := v.ToControlVector(rows, float32(*coeff), hint)
	if err != nil {
		return usagef("%v", err)
	}
	if err := tensorfile.WriteFileAtomic(*out, func(w io.Writer) error { return ggufvec.Write(w, cv) }); err != nil {
		return err
	}
	var dirs []string
	for _, n := range cv.Indices() {
		dirs = append(dirs, "direction."+strconv.Itoa(n))
	}
	fmt.Printf("wrote %s: rows %s × %g as %s (llama.cpp adds direction.N to the output of block N = refusalkit row N+1)\n",
		*out, cv.Strings["refusalkit.exported_rows"], *coeff, strings.Join(dirs, ", "))
	fmt.Printf("use: llama-cli -m MODEL.gguf --control-vector-scaled %s:1 (older llama.cpp: --control-vector-scaled %s 1)\n", *out, *out)
	return nil
}

// parseRange reads "A-B" with 0 ≤ A ≤ B.
func parseRange(s string) (a, b int, ok bool) {
	as, bs, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	a, errA := strconv.Atoi(as)
	b, errB := strconv.Atoi(bs)
	return a, b, errA == nil && errB == nil && a >= 0 && a <= b
}

// cmdInspect prints what a vector file says about itself: a refusalkit
// vector (a .safetensors file or a vector folder) with its provenance, or a
// llama.cpp control vector with its directions and the rows they are.
func cmdInspect(args []string) error {
	fs := newFlags("inspect", "FILE [--compare FILE2] (refusal_vector.safetensors, a vector folder, or a control-vector .gguf)")
	compare := fs.String("compare", "", "a second refusal vector (file or folder) of the same model: print the cosine and the norm ratio of FILE's rows to its rows, and the provenance that differs")
	if err := flagError(fs, fs.Parse(args)); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) > 0 { // FILE may come before the flags: parse what follows it too
		if err := flagError(fs, fs.Parse(files[1:])); err != nil {
			return err
		}
		files = append(files[:1:1], fs.Args()...)
	}
	if len(files) != 1 {
		return usagef("give one file to inspect (see --help)")
	}
	path := files[0]
	if *compare != "" {
		a, err := readVectorArg(path)
		if err != nil {
			return err
		}
		b, err := readVectorArg(*compare)
		if err != nil {
			return fmt.Errorf("--compare: %w", err)
		}
		return printComparison(path, a, *compare, b)
	}
	st, err := os.Stat(path)
	if err != nil {
		return usagef("%s does not exist", path)
	}
	if st.IsDir() {
		path = filepath.Join(path, runs.VectorSafetensorsFile)
	}
	switch {
	case strings.HasSuffix(path, ".gguf"):
		cv, err := ggufvec.Read(path)
		if err != nil {
			return usagef("%v", err)
		}
		printControlVector(path, cv)
	case strings.HasSuffix(path, ".safetensors"):
		v, err := readVectorArg(path)
		if err != nil {
			return err
		}
		return printVector(path, v)
	default:
		return usagef("%s is neither a .safetensors refusal vector nor a .gguf control vector", path)
	}
	return nil
}

// abridge quotes s, cut to its first 60 characters when longer (instruction
// lists run to kilobytes).
func abridge(s string) string {
	if r := []rune(s); len(r) > 60 {
		return fmt.Sprintf("%q… (%d characters)", string(r[:60]), len(r))
	}
	return fmt.Sprintf("%q", s)
}

// readVectorArg reads a refusalkit vector given as its .safetensors file or
// its folder.
func readVectorArg(path string) (*refusalkit.RefusalVector, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("%s does not exist", path)
	}
	if st.IsDir() {
		path = filepath.Join(path, runs.VectorSafetensorsFile)
	}
	if !strings.HasSuffix(path, ".safetensors") {
		return nil, usagef("%s is not a refusalkit vector (a .safetensors file or its folder): compare control vectors after `refusalkit evaluate --vector`", path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, usagef("no refusal vector at %s: give the folder written by `refusalkit extract`", path)
	}
	v, err := runs.ReadVectorFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return v, nil
}

// printComparison prints, row by row, how a's rows line up with b's: the
// cosine and |a| ÷ |b|; then the lowest cosine past the embeddings (row 0),
// and every provenance entry the two files record differently.
func printComparison(pathA string, a *refusalkit.RefusalVector, pathB string, b *refusalkit.RefusalVector) error {
	cos, err := refusalkit.LayerCosines(a, b)
	if err != nil {
		return usagef("%v", err)
	}
	fmt.Printf("%s against %s: [%d, %d]\n", pathA, pathB, len(a.Data), a.DModel)
	fmt.Println("row  cosine  norm ratio")
	na, nb := a.Norms(), b.Norms()
	lowest, at := math.Inf(1), -1
	for l, c := range cos {
		fmt.Printf("%3d  %.4f  %.3f\n", l, c, na[l]/nb[l])
		if l > 0 && c < lowest { // NaN (a zero row) never compares lower
			lowest, at = c, l
		}
	}
	if at > 0 {
		fmt.Printf("lowest cosine past row 0: %.4f (row %d)\n", lowest, at)
	}
	ma, mb := runs.VectorMetadata(a), runs.VectorMetadata(b)
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	differ := map[string]string{}
	for k := range keys {
		if ma[k] != mb[k] {
			differ[k] = fmt.Sprintf("%s | %s", abridge(ma[k]), abridge(mb[k]))
		}
	}
	if len(differ) == 0 {
		fmt.Println("provenance: the same")
		return nil
	}
	fmt.Println("provenance that differs (this file | --compare):")
	printSorted(differ, "  ")
	return nil
}

func printVector(path string, v *refusalkit.RefusalVector) error {
	fmt.Printf("%s: refusalkit refusal vector, float32 [%d, %d]\n", path, len(v.Data), v.DModel)
	meta := runs.VectorMetadata(v)
	maps.DeleteFunc(meta, func(k, _ string) bool { return refusalkit.IsProvenanceKey(k) })
	printSorted(meta, "")
	p, err := runs.ReadProvenance(path)
	if err != nil {
		return usagef("%v", err)
	}
	printProvenance(p)
	norms := v.Norms()
	fmt.Printf("row norms:")
	for l, n := range norms {
		fmt.Printf(" %d:%.3g", l, n)
	}
	fmt.Println()
	if v.NLayers >= 3 {
		fmt.Printf("llama.cpp: rows 2..%d export as direction.1..%d (row r → direction.r-1); rows 0, 1 and %d have no slot\n",
			v.NLayers-1, v.NLayers-2, v.NLayers)
	}
	return nil
}

// printProvenance prints a provenance record (runs.ReadProvenance), what
// it holds of it: files written before a field was recorded lack it.
func printProvenance(p *refusalkit.Provenance) {
	fmt.Println("provenance:")
	for _, f := range [][2]string{{"model_path", p.ModelPath}, {"model_hash", p.ModelHash}, {"tokenizer", p.Tokenizer},
		{"backend", p.Backend}, {"dtype", p.DType}, {"run_digest", p.RunDigest}} {
		if f[1] != "" {
			fmt.Printf("  %s: %s\n", f[0], f[1])
		}
	}
	if len(p.Versions) > 0 {
		printSorted(p.Versions, "  versions: ")
	}
	if len(p.RunSettings) > 0 {
		fmt.Println("  run_settings:")
		for _, s := range p.RunSettings {
			fmt.Printf("    %s: %s\n", s.Name, s.Value)
		}
	}
}

func printControlVector(path string, cv *ggufvec.ControlVector) {
	fmt.Printf("%s: llama.cpp control vector, %d directions of %d values\n", path, len(cv.Directions), cv.NEmbd)
	fmt.Printf("%s: %s\n%s: %d\n", ggufvec.KeyModelHint, cv.ModelHint, ggufvec.KeyLayerCount, cv.LayerCount)
	printSorted(cv.Strings, "")
	for _, n := range cv.Indices() {
		var s float64
		for _, x := range cv.Directions[n] {
			s += float64(x) * float64(x)
		}
		fmt.Printf("direction.%d: norm %.4g, added to the output of block %d = refusalkit row %d\n", n, math.Sqrt(s), n, n+1)
	}
}

func printSorted(m map[string]string, indent string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s%s: %s\n", indent, k, m[k])
	}
}
