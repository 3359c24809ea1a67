// Command refusalkit extracts and evaluates refusal vectors in chat models.
//
//	refusalkit generate --model_path smollm2-135m-instruct --prompt "..."
//	refusalkit extract  --model_path smollm2-135m-instruct [--n_samples 20 --n_completions 10 ...]
//	refusalkit evaluate --model_path smollm2-135m-instruct --vector_dir runs/.../harmless_refusal_vectors
//	refusalkit ablate   --model_path smollm2-135m-instruct --vector_dir runs/.../harmless_refusal_vectors
//	refusalkit abliterate --model_path smollm2-135m-instruct --vector_dir runs/.../harmless_refusal_vectors --out abliterated
//	refusalkit export   --vector_dir runs/.../harmless_refusal_vectors --format llama.cpp --layer 12 --out refusal.gguf
//	refusalkit inspect  runs/.../harmless_refusal_vectors/refusal_vector.safetensors
//
// Exit status: 0 on success, 2 for a usage error, 1 when the run fails.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// usageError marks errors that come from the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const topUsage = `usage: refusalkit <command> [flags]

commands:
  generate   reply to one prompt with the model's chat template
  extract    sample ALPACA queries, generate compliant and refusal responses, compute the refusal vector
  merge      make the shards of an extraction split across machines (extract --shard i/M) into the run's files
  evaluate   select a layer by steering score and sweep activation-addition coefficients
  ablate     refusal rates without and with the vector's direction ablated; cosine with the reference direction
  abliterate write the model with that direction projected out of its weights (a Hugging Face folder or GGUF)
  charts     draw a run folder's charts as HTML files (extract and evaluate also do)
  report     print a run folder's results as Markdown: judges' baselines, sweep, calibration, cosines, ablations
  judges     the judges' agreement with hand labels (--labels), and what each reads in a run folder (--run_dir)
  rejudge    make a finished extraction's vector again with another --judge, from the same responses (nothing is generated)
  rundir     print a model's default run folder (the spec's runs/{model_alias}/harmless_refusal_vectors)
  export     write rows of a vector as a llama.cpp control vector (--format llama.cpp)
  inspect    print a vector file's provenance (refusalkit .safetensors or llama.cpp .gguf)

Run 'refusalkit <command> --help' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, topUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "generate":
		err = cmdGenerate(args[1:])
	case "extract":
		err = cmdExtract(args[1:])
	case "evaluate":
		err = cmdEvaluate(args[1:])
	case "ablate":
		err = cmdAblate(args[1:])
	case "abliterate":
		err = cmdAbliterate(args[1:])
	case "merge":
		err = cmdMerge(args[1:])
	case "charts":
		err = cmdCharts(args[1:])
	case "report":
		err = cmdReport(args[1:])
	case "rundir":
		err = cmdRunDir(args[1:])
	case "export":
		err = cmdExport(args[1:])
	case "inspect":
		err = cmdInspect(args[1:])
	case "judges":
		err = cmdJudges(args[1:])
	case "rejudge":
		err = cmdRejudge(args[1:])
	default:
		err = usagef("unknown command %q: use generate, extract, merge, evaluate, ablate, abliterate, charts, report, judges, rejudge, export, inspect or rundir", args[0])
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "refusalkit %s: %s\n", args[0], oneLine(err.Error()))
		return 2
	default:
		fmt.Fprintf(os.Stderr, "refusalkit %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
}

// oneLine keeps error output to a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
