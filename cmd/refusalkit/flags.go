package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/refusalkit/refusalkit/models"
	"github.com/refusalkit/refusalkit/refusalkit"
	"github.com/refusalkit/refusalkit/refusalkit/judge"
)

var errHelp = errors.New("help shown")

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported in one line by run; --help prints the flags
	usages[fs] = func() {
		fmt.Fprintf(os.Stderr, "usage: refusalkit %s %s\n\nflags:\n", name, synopsis)
		fs.SetOutput(os.Stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

var usages = map[*flag.FlagSet]func(){}

// parseFlags parses args; -h shows usage and returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := flagError(fs, fs.Parse(args)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return nil
}

// flagError is fs.Parse's error as the commands report it: -h shows usage
// and returns errHelp, anything else is a usage error; nil stays nil.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		usages[fs]()
		return errHelp
	}
	if err != nil {
		return usagef("%v (see --help)", err)
	}
	return nil
}

// floatList is a flag holding a list of finite numbers, given comma-separated
// or (see joinSpaceLists) space-separated as in the spec's Python CLI.
type floatList []float64

func (l *floatList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strings.Join(parts, " ")
}

func (l *floatList) Set(s string) error {
	*l = nil
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%q is not a finite number", part)
		}
		*l = append(*l, v)
	}
	if len(*l) == 0 {
		return errors.New("empty list")
	}
	return nil
}

// stringList is a repeatable text flag: each use adds one value, and the
// first use replaces the default.
type stringList struct {
	list []string
	set  bool
}

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	q := make([]string, len(l.list))
	for i, s := range l.list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func (l *stringList) Set(s string) error {
	if !l.set {
		l.list, l.set = nil, true
	}
	l.list = append(l.list, s)
	return nil
}

// joinSpaceLists turns "--coefficients 0 0.5 1" into "--coefficients=0 0.5 1":
// the values after a list flag, up to the next flag, belong to it.
func joinSpaceLists(args []string, listFlags ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		isList := strings.HasPrefix(args[i], "-") && !strings.Contains(name, "=")
		if isList {
			isList = false
			for _, f := range listFlags {
				isList = isList || name == f
			}
		}
		if !isList {
			out = append(out, args[i])
			continue
		}
		var vals []string
		for i+1 < len(args) && !(strings.HasPrefix(args[i+1], "-") && !isNumber(args[i+1])) {
			i++
			vals = append(vals, args[i])
		}
		out = append(out, "--"+name+"="+strings.Join(vals, " "))
	}
	return out
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// dtypeFlag declares --dtype, the type of weights, activations and KV cache.
func dtypeFlag(fs *flag.FlagSet) *string {
	return fs.String("dtype", "", "float32, bfloat16 or float16: weights, activations and KV cache (norm statistics, softmax, logits and captured sums stay float32; default: float32 on CPU, bfloat16 on CUDA)")
}

// devicesFlag declares --devices, the number of devices the model is split over.
func devicesFlag(fs *flag.FlagSet) *int {
	return fs.Int("devices", 1, "split the model over this many devices of the backend: attention by heads, the MLP by its hidden dimension, the rest replicated (XLA inserts the collectives; on xla:cpu, virtual CPU devices); the heads and the MLP must divide by it")
}

// judgeFlag declares --judge, the judge that keeps responses and counts refusals.
func judgeFlag(fs *flag.FlagSet, what string) *string {
	return fs.String("judge", judge.Default, what+": substring (the spec's substring matching) or leading "+
		"(the refusal must lead the reply and no answer may follow; loops and empty replies break down); see docs/judges.md")
}

// checkJudge refuses an unknown --judge before any work.
func checkJudge(name string) error {
	if _, err := judge.ByName(name); err != nil {
		return usagef("--judge: unknown judge %q: valid values are %s", name, strings.Join(judge.Names, ", "))
	}
	return nil
}

// positive checks integer flags that must be > 0.
func positive(name string, v int) error {
	if v <= 0 {
		return usagef("--%s must be a positive integer, got %d", name, v)
	}
	return nil
}

// checkUserSettings refuses sampling values that break generation and user
// text that cannot reach the model as written, before any work.
func checkUserSettings(temperature, topP float64, topK int, texts ...string) error {
	if err := refusalkit.CheckSampling(temperature, topP, topK); err != nil {
		return usagef("%v", err)
	}
	for i, t := range texts {
		name := refusalkit.RefusalInstructionName(i, len(texts))
		if err := refusalkit.CheckText(name, t); err != nil {
			return usagef("%v", err)
		}
		if strings.Contains(t, `\n`) {
			fmt.Fprintf(os.Stderr, "warning: %s holds a backslash followed by n, not a newline; in a shell write $'...\\n' for a newline\n", name)
		}
	}
	return nil
}

// promptsFit checks every prompt an extraction will send against the context.
func promptsFit(m *models.Model, cfg refusalkit.ExtractConfig) error {
	prompts, err := refusalkit.ExtractPrompts(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	if err := refusalkit.CheckPromptsFit(m, prompts, cfg.MaxNewTokens); err != nil {
		return usagef("%v", err)
	}
	return nil
}
