package models

import (
	"fmt"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/dtensor"
)

// Several devices (LoadOptions.Devices): the weights are split Megatron-style
// (Shoeybi et al. 2019, "Megatron-LM", §3) over a 1-D mesh of N devices:
//
//   - attention: Q, K, V by heads (their rows) and O by its input columns,
//     so each device runs whole heads and O's partial products are summed;
//   - MLP: gate and up by the hidden dimension (rows), down by its input
//     columns, the same pattern;
//   - embeddings, LM head and norms are replicated.
//
// Every program is compiled with XLA's automatic sharding (Shardy): the
// weights' layout is an annotation on the program's inputs, and XLA
// inserts the collectives (the all-reduce after O and after down). The
// annotations do not change what is computed, only where: results equal one
// device's up to the order of float additions.
//
// With fewer key/value heads than devices (grouped-query attention, e.g. 2
// KV heads on 4 devices), K and V are replicated, as vLLM does past
// n_kv_heads: each device holds every KV head and its KV cache.

// split says which axis of a weight is divided across devices.
type split int

const (
	splitNone    split = iota
	splitHeads         // rows of Q (and its bias): whole query heads per device
	splitKVHeads       // rows of K, V: whole KV heads, when they divide
	splitHeadsIn       // columns of O
	splitFFN           // rows of gate and up (and biases)
	splitFFNIn         // columns of down
)

// meshAxis names the one axis of the device mesh.
const meshAxis = "model"

// WithDevices returns the config with the number of devices a model built
// from it (NewTiny, the loaders) splits its weights over (see LoadOptions).
func (c Config) WithDevices(n int) Config {
	c.devices = n
	return c
}

// numDevices is the number of devices the model runs on (1 unless split).
func (c *Config) numDevices() int { return max(1, c.devices) }

// kvSplit reports whether K, V and the KV cache are divided by KV heads.
func (c *Config) kvSplit() bool { return c.NumKVHeads%c.numDevices() == 0 }

// checkDevices refuses, before anything is loaded, a device count the
// backend does not have or the model's heads or MLP do not divide by.
func (c *Config) checkDevices(backend compute.Backend) error {
	n := c.numDevices()
	if c.devices < 0 {
		return fmt.Errorf("--devices %d: want 1 or more", c.devices)
	}
	if n == 1 {
		return nil
	}
	if have := backend.NumDevices(); n > have {
		return fmt.Errorf("--devices %d: the %s backend has %d device(s)", n, BackendName(backend), have)
	}
	if c.NumHeads%n != 0 {
		return fmt.Errorf("--devices %d: %s has %d attention heads, which do not divide into %d (use a divisor of %d)", n, c.Name, c.NumHeads, n, c.NumHeads)
	}
	if c.FFNDim%n != 0 {
		return fmt.Errorf("--devices %d: %s has an MLP hidden dimension of %d, which does not divide into %d", n, c.Name, c.FFNDim, n)
	}
	return nil
}

// layout is where a model's values live with several devices: the mesh
// and each weight's sharding, in visit order.
type layout struct {
	mesh    *distributed.DeviceMesh
	weights []*distributed.ShardingSpec
	cache   *distributed.ShardingSpec // the KV cache [B, n_kv_heads, T, head_dim]
	repl    *distributed.ShardingSpec
}

func newLayout(c *Config) (*layout, error) {
	mesh, err := distributed.NewDeviceMesh([]int{c.numDevices()}, []string{meshAxis})
	if err != nil {
		return nil, err
	}
	l := &layout{mesh: mesh, repl: distributed.NewReplicatedShardingSpec(mesh), cache: distributed.NewReplicatedShardingSpec(mesh)}
	if c.kvSplit() {
		if l.cache, err = distributed.BuildSpec(mesh).R().S(meshAxis).Done(); err != nil {
			return nil, err
		}
	}
	var firstErr error
	(&Params[*tensors.Tensor]{}).visit(c, func(s weightSpec, _ **tensors.Tensor) {
		spec, err := l.weightSpec(c, s)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		l.weights = append(l.weights, spec)
	})
	return l, firstErr
}

// weightSpec is the sharding of one weight (replicated unless split).
func (l *layout) weightSpec(c *Config, s weightSpec) (*distributed.ShardingSpec, error) {
	b := distributed.BuildSpec(l.mesh)
	switch {
	case s.split == splitHeads || s.split == splitFFN || (s.split == splitKVHeads && c.kvSplit()):
		b.S(meshAxis)
		if len(s.shape) == 2 {
			b.R()
		}
	case s.split == splitHeadsIn || s.split == splitFFNIn:
		b.R().S(meshAxis)
	default:
		return l.repl, nil
	}
	return b.Done()
}

// placer uploads weights as they are read: whole to the one device, or
// split into one shard per device. It keeps each device's list.
type placer struct {
	cfg     *Config
	backend compute.Backend
	layout  *layout             // nil: one device
	shards  [][]*tensors.Tensor // [device][weight in visit order], with several devices
	next    int                 // visit index of the next weight
}

func newPlacer(cfg *Config, backend compute.Backend) (*placer, error) {
	if err := cfg.checkDevices(backend); err != nil {
		return nil, err
	}
	p := &placer{cfg: cfg, backend: backend}
	if cfg.numDevices() > 1 {
		var err error
		if p.layout, err = newLayout(cfg); err != nil {
			return nil, err
		}
		p.shards = make([][]*tensors.Tensor, cfg.numDevices())
	}
	return p, nil
}

// place uploads t, the weight s on the host, and drops its host copy; it
// returns the tensor on device 0 (the whole weight, or its first shard).
func (p *placer) place(s weightSpec, t *tensors.Tensor) (*tensors.Tensor, error) {
	i := p.next
	p.next++
	if p.layout == nil {
		return t, t.ToDevice(p.backend, 0)
	}
	spec := p.layout.weights[i]
	var shards []*tensors.Tensor
	if spec.IsReplicated() {
		shards = []*tensors.Tensor{t}
		for range p.cfg.numDevices() - 1 {
			c, err := t.LocalClone()
			if err != nil {
				return nil, err
			}
			shards = append(shards, c)
		}
	} else {
		dt, err := dtensor.ShardTensor(spec, t)
		if err != nil {
			return nil, fmt.Errorf("split weight %s: %w", s.hf, err)
		}
		shards = dt.Shards()
		t.FinalizeAll()
	}
	for d, sh := range shards {
		if err := sh.ToDevice(p.backend, compute.DeviceNum(d)); err != nil {
			return nil, err
		}
		p.shards[d] = append(p.shards[d], sh)
	}
	return shards[0], nil
}

// placed is one value of a program's inputs or outputs on the model's
// devices: its shard (or copy, when replicated) on each device, in device
// order; one tensor with one device.
type placed []*tensors.Tensor

// host returns device 0's copy of a replicated value, freeing the others.
func (p placed) host() *tensors.Tensor {
	for _, t := range p[1:] {
		_ = t.FinalizeAll()
	}
	return p[0]
}

// finalize frees the value on every device.
func (p placed) finalize() {
	for _, t := range p {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
}

// donated marks a placed input whose buffers the program may reuse.
type donated placed

// WeightBytesPerDevice is the bytes of weights each device holds, in device order.
func (m *Model) WeightBytesPerDevice() []int64 {
	if m.shards == nil {
		var n int64
		for _, t := range m.weightList {
			n += int64(t.Memory())
		}
		return []int64{n}
	}
	out := make([]int64, len(m.shards))
	for d, ws := range m.shards {
		for _, t := range ws {
			out[d] += int64(t.Memory())
		}
	}
	return out
}

// Devices is the number of devices the model runs on.
func (m *Model) Devices() int { return m.Config.numDevices() }

// program's inputs and outputs, by name, decide their sharding: a KV cache
// is split like K and V, everything else is replicated.
func (l *layout) specs(names []string) []*distributed.ShardingSpec {
	out := make([]*distributed.ShardingSpec, len(names))
	for i, n := range names {
		out[i] = l.repl
		if isCacheName(n) {
			out[i] = l.cache
		}
	}
	return out
}

// call runs a compiled program: the weights first when it takes them,
// then in, each a Go value or host tensor (copied to every device), a
// placed value or a donated one. It returns each output on every device.
func (m *Model) call(exec *graph.Exec, weights bool, in []any) ([]placed, error) {
	n := m.Config.numDevices()
	var args, keyArgs []any // keyArgs: args as compileKey reads them
	var clones []*tensors.Tensor
	for d := range n {
		if weights {
			ws := m.weightList
			if m.shards != nil {
				ws = m.shards[d]
			}
			for _, w := range ws {
				args = append(args, w)
			}
		}
		for _, v := range in {
			switch v := v.(type) {
			case placed:
				args = append(args, v[d])
			case donated:
				keyArgs = append(keyArgs, donatedShape{v[d].Shape()})
				b, err := graph.DonateTensorBuffer(v[d], m.Backend, compute.DeviceNum(d))
				if err != nil {
					return nil, err
				}
				args = append(args, b)
				continue
			case *tensors.Tensor:
				if d == 0 {
					args = append(args, v)
					break
				}
				// A tensor lives on one device: the others get copies.
				c, err := v.LocalClone()
				if err != nil {
					return nil, err
				}
				clones = append(clones, c)
				args = append(args, c)
			default:
				args = append(args, v)
			}
			keyArgs = append(keyArgs, args[len(args)-1])
		}
	}
	if weights {
		keyArgs = append(args[:len(m.weightList):len(m.weightList)], keyArgs...)
	}
	whole := m.compileFirst(exec, keyArgs, n)
	start := time.Now()
	outs, err := exec.Call(args...)
	took := time.Since(start)
	m.count(func(s *Stats) {
		if whole {
			s.Compilations++
			s.CompileTime += took
		} else {
			s.Runs++
			s.RunTime += took
		}
	})
	for _, c := range clones {
		_ = c.FinalizeAll()
	}
	if err != nil {
		return nil, err
	}
	per := len(outs) / n
	res := make([]placed, per)
	for i := range res {
		res[i] = make(placed, n)
		for d := range n {
			res[i][d] = outs[d*per+i]
		}
	}
	return res, nil
}
