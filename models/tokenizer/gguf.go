package tokenizer

import (
	"fmt"

	"github.com/gomlx/go-huggingface/models/gguf"
)

// MetadataFromGGUF extracts the tokenizer metadata from a parsed GGUF file
// (github.com/gomlx/go-huggingface/models/gguf). Only the file header is needed:
// gguf.Open reads all key/values, including the tokens and merges arrays.
func MetadataFromGGUF(f *gguf.File) (*GGUFMetadata, error) {
	if f == nil {
		return nil, fmt.Errorf("tokenizer: nil GGUF file")
	}
	kv := make(map[string]any, len(f.KeyValues))
	for _, e := range f.KeyValues {
		kv[e.Key] = e.Raw()
	}
	meta, err := MetadataFromMap(kv)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, f.Path())
	}
	return meta, nil
}

// BuildJSONFromGGUFFile opens a GGUF file and builds the Hugging Face
// tokenizer.json described by its metadata.
func BuildJSONFromGGUFFile(path string) ([]byte, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	meta, err := MetadataFromGGUF(f)
	if err != nil {
		return nil, err
	}
	data, err := BuildJSONFromGGUF(meta)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return data, nil
}
