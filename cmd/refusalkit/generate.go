package main

import (
	"fmt"
	"os"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
)

// cmdGenerate prints the model's reply to one prompt, and nothing else, on stdout.
func cmdGenerate(args []string) error {
	fs := newFlags("generate", "--model_path M --prompt TEXT [--raw] [--parse_special_tokens] [--max_new_tokens N] [--greedy | --temperature T --top_p P --top_k K --seed S]")
	modelPath := fs.String("model_path", "", "model: "+models.DefaultModel+", a .gguf file, a Hugging Face folder or hub id (required)")
	prompt := fs.String("prompt", "", "the user message (required)")
	maxNew := fs.Int("max_new_tokens", 64, "maximum tokens to generate")
	greedy := fs.Bool("greedy", false, "greedy decoding (overrides the sampling flags)")
	temperature := fs.Float64("temperature", 1.0, "sampling temperature")
	topP := fs.Float64("top_p", 0.95, "nucleus sampling mass (1: off)")
	topK := fs.Int("top_k", 64, "top-k sampling (0: off)")
	seed := fs.Int64("seed", 42, "sampling seed")
	raw := fs.Bool("raw", false, "feed --prompt as raw text, without the chat template (base models)")
	parseSpecial := fs.Bool("parse_special_tokens", false, "read special-token spellings in user text (e.g. <|im_end|> in --prompt) as control tokens, as transformers' apply_chat_template does; by default they are plain text")
	backend := fs.String("backend", "", "GoMLX backend: go, xla:cpu, xla:cuda (default: $GOMLX_BACKEND, else the fastest that loads)")
	dtype := dtypeFlag(fs)
	devices := devicesFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := models.ParseDType(*dtype); err != nil {
		return usagef("--dtype: %v", err)
	}
	if *modelPath == "" || *prompt == "" {
		return usagef("--model_path and --prompt are required (see --help)")
	}
	if err := positive("max_new_tokens", *maxNew); err != nil {
		return err
	}
	if !*greedy {
		if err := refusalkit.CheckSampling(*temperature, *topP, *topK); err != nil {
			return usagef("%v (or --greedy for greedy decoding)", err)
		}
	}
	if err := refusalkit.CheckText("--prompt", *prompt); err != nil {
		return usagef("%v", err)
	}
	m, err := loadModel(*modelPath, *backend, *dtype, *devices)
	if err != nil {
		return err
	}
	opts := models.GenerateOptions{MaxNewTokens: *maxNew, Sampling: models.Sampling{Temperature: *temperature, TopP: *topP, TopK: *topK}, Seed: uint64(*seed)}
	if *greedy {
		opts.Temperature = 0
	}
	var ids []int32
	enc := models.EncodeOptions{ParseSpecialTokens: *parseSpecial}
	if *raw {
		ids, err = m.EncodeRawWith(*prompt, enc)
	} else if m.Template == nil {
		return usagef("model %s has no chat template (a base model): pass --raw to continue raw text", m.Alias())
	} else {
		_, ids, err = m.EncodePromptWith(*prompt, enc)
	}
	if err != nil {
		return err
	}
	g, err := m.GenerateIDs([][]int32{ids}, opts)
	if err != nil {
		return err
	}
	fmt.Println(g.Text[0])
	return nil
}

// loadModel creates the backend and loads the model. A --model_path or
// --backend that names nothing usable is a usage error.
func loadModel(modelPath, backendName, dtypeName string, devices int) (*models.Model, error) {
	dt, err := models.ParseDType(dtypeName)
	if err != nil {
		return nil, usagef("--dtype: %v", err)
	}
	if devices < 1 {
		return nil, usagef("--devices %d: want 1 or more", devices)
	}
	// Resolve once (a hub id downloads here); Load takes the resolved file or folder.
	src, err := models.Resolve(modelPath)
	if err != nil {
		return nil, usagef("%v", err)
	}
	b, err := models.NewBackendWithDevices(backendName, devices)
	if err != nil {
		return nil, usagef("%v", err)
	}
	m, err := models.LoadWith(src, b, models.LoadOptions{DType: dt, Devices: devices})
	if err != nil {
		// The file named by --model_path cannot serve: corrupt, truncated,
		// an unsupported architecture or setting.
		return nil, usagef("%v", err)
	}
	for _, w := range m.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if devices > 1 {
		fmt.Fprintf(os.Stderr, "%s split over %d devices: %.1f MB of weights on each\n", m.Alias(), devices, float64(m.WeightBytesPerDevice()[0])/1e6)
	}
	return m, nil
}

// needChat refuses a base model for the commands that render chat prompts.
func needChat(m *models.Model, command string) error {
	if m.Template == nil {
		m.Close()
		return usagef("model %s has no chat template (a base model): %s needs an instruction-tuned chat model; `refusalkit generate --raw` runs a base model on raw text", m.Alias(), command)
	}
	return nil
}
