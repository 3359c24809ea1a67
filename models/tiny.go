package models

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// TinyConfig is a small random-weight Llama used by structural tests across
// the project: fast to build and run, with every feature of the real path
// (grouped-query attention, RoPE, tied head, QKV biases when asked).
func TinyConfig() Config {
	return Config{
		Name: "tiny-random-llama", Architecture: "llama",
		NumLayers: 3, DModel: 32, NumHeads: 4, NumKVHeads: 2, HeadDim: 8, FFNDim: 64,
		VocabSize: len(tinySpecials) + 256, ContextLength: 512, RMSNormEps: 1e-5,
		RoPE: RoPE{Theta: 10000}, TiedEmbeddings: true, BOS: -1, EOS: 257,
	}
}

// tinySpecials are the byte tokenizer's special tokens, ids 256 and up.
var tinySpecials = []string{"<|im_start|>", "<|im_end|>", "<|endoftext|>"}

// tinyTemplate is ChatML, the template SmolLM2 and Qwen use.
const tinyTemplate = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// NewTiny builds a random-weight model from cfg (see TinyConfig) with a byte
// tokenizer and a ChatML template. Weights are N(0, 0.02²) like a fresh
// Llama, norms 1, so outputs are deterministic for a seed.
func NewTiny(cfg Config, seed uint64, backend compute.Backend) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if backend == nil {
		var err error
		if backend, err = NewBackend(""); err != nil {
			return nil, err
		}
	}
	pl, err := newPlacer(&cfg, backend)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x7e57))
	p := &Params[*tensors.Tensor]{}
	var uploadErr error
	p.visit(&cfg, func(s weightSpec, v **tensors.Tensor) {
		if uploadErr != nil {
			return
		}
		n := 1
		for _, d := range s.shape {
			n *= d
		}
		data := make([]float32, n)
		isNorm := len(s.shape) == 1 && strings.Contains(s.hf, "norm")
		for i := range data {
			if isNorm {
				data[i] = 1 + 0.1*float32(rng.NormFloat64())
			} else {
				data[i] = 0.02 * float32(rng.NormFloat64()) * 5 // larger than init so layers matter
			}
		}
		*v, _ = fromFloat32Data(data, s.dtype(&cfg), s.shape...) // dtypes of DTypes only: no error
		// Uploaded one at a time, as the loaders do: a 7B random model is
		// never held on the host and the device at once.
		*v, uploadErr = pl.place(s, *v)
	})
	if uploadErr != nil {
		closeWeights(&cfg, p)
		return nil, fmt.Errorf("move weights to the %s backend: %w", BackendName(backend), uploadErr)
	}
	tmpl, err := NewChatTemplate(tinyTemplate, "", "<|endoftext|>")
	if err != nil {
		return nil, err
	}
	return newModel(cfg, "tiny-random", pl, p, byteTokenizer{}, tmpl)
}

// byteTokenizer maps each byte to its value and the special tokens to 256+.
type byteTokenizer struct{}

func (b byteTokenizer) Encode(text string) ([]int32, error) { return b.EncodeTemplated(text, nil) }

// EncodeTemplated reads a special token's spelling as that token unless it
// overlaps a user span, where its bytes are text like any other.
func (byteTokenizer) EncodeTemplated(text string, user []Span) ([]int32, error) {
	var ids []int32
	for pos := 0; pos < len(text); {
		special := false
		for i, s := range tinySpecials {
			if strings.HasPrefix(text[pos:], s) && !overlapsUser(pos, pos+len(s), user) {
				ids = append(ids, int32(256+i))
				pos += len(s)
				special = true
				break
			}
		}
		if !special {
			ids = append(ids, int32(text[pos]))
			pos++
		}
	}
	return ids, nil
}

func overlapsUser(start, end int, user []Span) bool {
	for _, u := range user {
		if start < u.End && u.Start < end {
			return true
		}
	}
	return false
}

func (byteTokenizer) Decode(ids []int32) string {
	var sb strings.Builder
	for _, id := range ids {
		if id >= 0 && id < 256 {
			sb.WriteByte(byte(id))
		}
	}
	return sb.String()
}

func (byteTokenizer) TokenID(token string) (int32, bool) {
	for i, s := range tinySpecials {
		if s == token {
			return int32(256 + i), true
		}
	}
	return 0, false
}
