package models

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"  // pure Go: works everywhere
	"github.com/gomlx/go-xla/compute/xla" // XLA/PJRT: CPU plugin or CUDA, when installed (no auto-download)
	"github.com/gomlx/go-xla/pjrt"
)

// BackendEnvVar selects the backend when no --backend flag is given (GoMLX's own variable).
const BackendEnvVar = compute.ConfigEnvVar

// backendPreference is tried in order when nothing is chosen: the fastest
// that loads here wins. "xla:cuda" needs a GPU and the CUDA PJRT plugin,
// "xla:cpu" the CPU PJRT plugin (both installed by tools/setup/backend.sh),
// "go" always works.
var backendPreference = []string{"xla:cuda", "xla:cpu", "go"}

// NewBackend creates the named backend ("go", "xla:cpu", "xla:cuda"). An empty
// name uses $GOMLX_BACKEND, else the first of backendPreference that loads.
func NewBackend(name string) (compute.Backend, error) {
	if name == "" {
		name = os.Getenv(BackendEnvVar)
	}
	if name != "" {
		b, err := newWithConfig(name)
		if err != nil {
			return nil, fmt.Errorf("backend %q did not load (%v): use one of %s, and run `make setup` for the native ones", name, firstLine(err), strings.Join(backendPreference, ", "))
		}
		return b, nil
	}
	var errs []string
	for _, cand := range backendPreference {
		b, err := newWithConfig(cand)
		if err == nil {
			return b, nil
		}
		errs = append(errs, cand+": "+firstLine(err))
	}
	return nil, fmt.Errorf("no backend loads here (%s)", strings.Join(errs, "; "))
}

// newWithConfig is compute.NewWithConfig, which panics on a name no backend
// registered: that becomes an error here.
func newWithConfig(config string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return compute.NewWithConfig(config)
}

// NewBackendWithDevices is NewBackend for a model split over `devices`
// devices (LoadOptions.Devices). The XLA CPU plugin has a fixed number of
// virtual devices (4 here) unless its cpu_device_count option asks for
// more: this plugin does not read XLA_FLAGS'
// --xla_force_host_platform_device_count. Other backends have the devices
// they have; LoadWith refuses a count above it.
func NewBackendWithDevices(name string, devices int) (compute.Backend, error) {
	b, err := NewBackend(name)
	if err != nil || devices <= b.NumDevices() || BackendName(b) != "xla:cpu" {
		return b, err
	}
	more, err := xla.NewWithOptions("cpu", pjrt.NamedValuesMap{"cpu_device_count": int64(devices)})
	if err != nil {
		return nil, fmt.Errorf("the XLA CPU plugin with %d devices: %v", devices, firstLine(err))
	}
	b.Finalize()
	return more, nil
}

// MustNewBackend is NewBackend for notebooks: it panics on error.
func MustNewBackend(name string) compute.Backend {
	b, err := NewBackend(name)
	if err != nil {
		panic(err)
	}
	return b
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// BackendName names a backend as --backend does: a PJRT backend with its
// plugin ("xla:cpu", "xla:cuda"), since go-xla's Name() is "xla" for every
// plugin; the pure-Go backend "go" (its Name() is "Go Backend"); any other
// by its Name().
func BackendName(b compute.Backend) string {
	if p, ok := b.(interface{ PluginName() string }); ok && p.PluginName() != "" {
		return b.Name() + ":" + p.PluginName()
	}
	if b.Name() == "Go Backend" {
		return gobackend.BackendName
	}
	return b.Name()
}
