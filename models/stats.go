package models

import (
	"fmt"
	"sync"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Stats counts the work a model has done since it was loaded: where the
// time of a phase goes (cmd/bench --profile prints the difference of two
// snapshots per phase). Counting costs a few additions per program run.
type Stats struct {
	// Compilations counts programs compiled for a new input shape, and
	// CompileTime their XLA compilation (the graph built and compiled,
	// nothing run).
	Compilations int
	CompileTime  time.Duration
	// Runs counts compiled programs run and RunTime their wall time,
	// compilation excluded: the model's compute, on the CPU backends.
	Runs    int
	RunTime time.Duration

	// Prefills counts prompt passes of generation and of the layer sweep;
	// PrefillPositions the positions they ran, of which PrefillPadding were
	// left padding (a batch's prompts padded to its bucketed length).
	Prefills, PrefillPositions, PrefillPadding int
	// DecodeSteps counts decoding steps; DecodeRows the rows they fed, of
	// which DecodeIdle had already finished (kept in the batch until it
	// compacts or ends).
	DecodeSteps, DecodeRows, DecodeIdle int
	// DecodeTime is the steps' program time, SampleTime choosing the next
	// tokens on the host.
	DecodeTime, SampleTime time.Duration
	// Passes counts teacher-forced passes over whole sequences (the side
	// effects' reference and comparisons, the layer sweep's suffixes);
	// PassPositions their positions, of which PassPadding were padding.
	Passes, PassPositions, PassPadding int
	// ToHostBytes and ToHostTime are what results copied from the device
	// took (logits, captured sums, statistics).
	ToHostBytes int64
	ToHostTime  time.Duration
}

// Sub returns the work done between an earlier snapshot and s.
func (s Stats) Sub(earlier Stats) Stats {
	return Stats{
		Compilations: s.Compilations - earlier.Compilations, CompileTime: s.CompileTime - earlier.CompileTime,
		Runs: s.Runs - earlier.Runs, RunTime: s.RunTime - earlier.RunTime,
		Prefills: s.Prefills - earlier.Prefills, PrefillPositions: s.PrefillPositions - earlier.PrefillPositions,
		PrefillPadding: s.PrefillPadding - earlier.PrefillPadding,
		DecodeSteps:    s.DecodeSteps - earlier.DecodeSteps, DecodeRows: s.DecodeRows - earlier.DecodeRows,
		DecodeIdle: s.DecodeIdle - earlier.DecodeIdle,
		DecodeTime: s.DecodeTime - earlier.DecodeTime, SampleTime: s.SampleTime - earlier.SampleTime,
		Passes: s.Passes - earlier.Passes, PassPositions: s.PassPositions - earlier.PassPositions,
		PassPadding: s.PassPadding - earlier.PassPadding,
		ToHostBytes: s.ToHostBytes - earlier.ToHostBytes, ToHostTime: s.ToHostTime - earlier.ToHostTime,
	}
}

// Stats returns a snapshot of the model's counts.
func (m *Model) Stats() Stats {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	return m.stats
}

// count updates the model's counts.
func (m *Model) count(f func(s *Stats)) {
	m.statsMu.Lock()
	f(&m.stats)
	m.statsMu.Unlock()
}

// statsState is the Model's counting state.
type statsState struct {
	statsMu  sync.Mutex
	stats    Stats
	compiled map[string]bool // programs and input shapes compiled, by compileKey
}

// compileFirst compiles exec for args' shapes when this is their first
// run, so that the compilation is timed apart from the run. With several
// devices the arguments are per device and the compilation happens inside
// the run: the first run is then counted whole as compilation.
func (m *Model) compileFirst(exec *graph.Exec, args []any, devices int) (counted bool) {
	key, shs, ok := compileKey(exec, args)
	m.statsMu.Lock()
	if m.compiled == nil {
		m.compiled = map[string]bool{}
	}
	seen := m.compiled[key]
	m.compiled[key] = true
	m.statsMu.Unlock()
	if seen || !ok || devices > 1 {
		return !seen && (ok && devices > 1)
	}
	start := time.Now()
	if _, err := exec.Compile(shs...); err != nil {
		return false // the run reports it
	}
	m.count(func(s *Stats) { s.Compilations++; s.CompileTime += time.Since(start) })
	return false
}

// compileKey names a program and its arguments' shapes; ok is false for an
// argument whose shape it cannot tell (then nothing is compiled ahead).
func compileKey(exec *graph.Exec, args []any) (key string, shs []shapes.Shape, ok bool) {
	shs = make([]shapes.Shape, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case *tensors.Tensor:
			shs[i] = a.Shape()
		case donatedShape:
			shs[i] = a.shape
		case int32:
			shs[i] = shapes.Make(dtypes.Int32)
		case float32:
			shs[i] = shapes.Make(dtypes.Float32)
		default:
			return "", nil, false
		}
	}
	return fmt.Sprintf("%p %v", exec, shs), shs, true
}

// donatedShape stands for a donated buffer in compileKey: the buffer
// itself no longer says its shape once donated.
type donatedShape struct{ shape shapes.Shape }

// copyToHost copies a device result to the host as float32s, counted.
func (m *Model) copyToHost(t *tensors.Tensor) ([]float32, error) {
	start := time.Now()
	flat, err := tensors.CopyFlatData[float32](t)
	m.count(func(s *Stats) { s.ToHostBytes += int64(4 * len(flat)); s.ToHostTime += time.Since(start) })
	return flat, err
}

// countPass counts a teacher-forced pass of copies of a batch whose rows
// are padded by pads to P positions.
func (m *Model) countPass(pads []int, P, copies int) {
	m.count(func(s *Stats) {
		s.Passes++
		s.PassPositions += copies * len(pads) * P
		for _, p := range pads {
			s.PassPadding += copies * p
		}
	})
}
