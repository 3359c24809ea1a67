package models

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
)

// fakeCUDA answers as go-xla's backend does with the CUDA plugin loaded:
// Name() is "xla" whatever the plugin, PluginName() says which.
type fakeCUDA struct{ compute.Backend }

func (fakeCUDA) Name() string       { return "xla" }
func (fakeCUDA) PluginName() string { return "cuda" }

// A PJRT backend is named with its plugin: the default dtype, the memory
// check and every metadata file must tell xla:cuda from xla:cpu, which
// Name() alone ("xla") does not.
func TestBackendName(t *testing.T) {
	cuda := fakeCUDA{}
	if got := BackendName(cuda); got != "xla:cuda" {
		t.Errorf("BackendName(CUDA PJRT) = %q, want xla:cuda", got)
	}
	if got := DefaultDType(cuda); got != dtypes.BFloat16 {
		t.Errorf("default dtype on xla:cuda = %s, want bfloat16", got)
	}
	if onCPU(cuda) {
		t.Errorf("xla:cuda taken for a CPU backend: its memory would be checked against the host's")
	}
	if g, err := NewBackend("go"); err != nil {
		t.Fatal(err)
	} else if got := BackendName(g); got != "go" {
		t.Errorf("BackendName(go) = %q, want go", got)
	}
	b, err := NewBackend("xla:cpu")
	if err != nil {
		t.Skipf("no XLA CPU plugin here: %v", err)
	}
	if got := BackendName(b); got != "xla:cpu" {
		t.Errorf("BackendName(xla:cpu) = %q", got)
	}
	if got := DefaultDType(b); got != dtypes.Float32 || !onCPU(b) {
		t.Errorf("xla:cpu: default dtype %s (want float32), on CPU %v", got, onCPU(b))
	}
}
