// refusalkit-cvec-logits: runs llama.cpp itself on given prompt token ids, with or
// without a control vector, and reports the first generated token's logits and a
// greedy completion. It exists so that refusalkit's interop check compares against
// llama.cpp's own code paths: the control vector is read by common_control_vector_load
// (what llama-cli's --control-vector-scaled calls) and applied by llama_set_adapter_cvec
// with the same default layer range llama-cli uses ([1, n_layer]).
//
//   refusalkit-cvec-logits -m MODEL.gguf [--cvec F.gguf --scale C] \
//       --tokens 1,2,3 [--n-predict N] [--logits-out F.f32] [-t THREADS]
//   refusalkit-cvec-logits -m MODEL.gguf --jobs FILE [--n-predict N] [-t THREADS]
//
// A jobs file holds one run a line, "CVEC|- SCALE TOKEN,TOKEN,... LOGITS_OUT", all on
// the one loaded model (the memory is cleared and the control vector set, or
// cleared, before each).
//
// Output: --logits-out gets n_vocab little-endian float32 logits of the first
// generated position; stdout gets one line "tokens: id id id ..." (greedy, stops at
// an end-of-generation token or after N tokens).
#include "common.h"
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

static int usage(const char * msg) {
    fprintf(stderr, "refusalkit-cvec-logits: %s\n", msg);
    return 2;
}

// One run: a prompt, with or without a control vector.
struct job {
    std::string cvec;   // "" or "-": none
    float scale = 1.0f;
    std::vector<llama_token> prompt;
    std::string logits_out;
};

static bool parse_tokens(const std::string & csv, std::vector<llama_token> & out) {
    std::stringstream ss(csv);
    std::string tok;
    while (std::getline(ss, tok, ',')) out.push_back((llama_token) std::stol(tok));
    return !out.empty();
}

static int run_job(llama_model * model, llama_context * ctx, const job & j, int n_predict) {
    llama_memory_clear(llama_get_memory(ctx), true);
    if (j.cvec.empty() || j.cvec == "-") {
        llama_set_adapter_cvec(ctx, nullptr, 0, 0, 0, 0);  // none
    } else {
        std::vector<common_control_vector_load_info> infos = {{j.scale, j.cvec}};
        common_control_vector_data cv = common_control_vector_load(infos);
        if (cv.n_embd == -1) return usage("control vector rejected by llama.cpp");
        // llama_adapter_cvec::apply writes only the layers the data covers and keeps
        // the rest from the previous apply; a fresh context (llama-cli's case) has
        // them zeroed. Pad with zeros so every job sees what llama-cli would.
        const size_t full = (size_t) cv.n_embd * (llama_model_n_layer(model) - 1);
        if (cv.data.size() < full) cv.data.resize(full, 0.0f);
        // llama-cli's defaults: layers 1 .. n_layer (common_init_from_params).
        if (llama_set_adapter_cvec(ctx, cv.data.data(), cv.data.size(), cv.n_embd, 1,
                                   llama_model_n_layer(model)) != 0) {
            return usage("llama_set_adapter_cvec failed");
        }
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> prompt = j.prompt;
    if (llama_decode(ctx, llama_batch_get_one(prompt.data(), prompt.size())) != 0) {
        return usage("llama_decode failed on the prompt");
    }
    const float * logits = llama_get_logits_ith(ctx, -1);
    if (!j.logits_out.empty()) {
        FILE * f = fopen(j.logits_out.c_str(), "wb");
        if (!f || fwrite(logits, sizeof(float), n_vocab, f) != (size_t) n_vocab) return usage("cannot write logits");
        fclose(f);
    }
    printf("tokens:");
    for (int step = 0; step < n_predict; step++) {
        const float * lg = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int v = 1; v < n_vocab; v++) if (lg[v] > lg[best]) best = v;
        if (llama_vocab_is_eog(vocab, best)) break;
        printf(" %d", best);
        if (llama_decode(ctx, llama_batch_get_one(&best, 1)) != 0) return usage("llama_decode failed");
    }
    printf("\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char ** argv) {
    std::string model_path, jobs_path;
    job one;
    int n_predict = 0, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) { fprintf(stderr, "missing value for %s\n", a.c_str()); exit(2); }
            return argv[++i];
        };
        if (a == "-m") model_path = next();
        else if (a == "--cvec") one.cvec = next();
        else if (a == "--scale") one.scale = std::stof(next());
        else if (a == "--tokens") { if (!parse_tokens(next(), one.prompt)) return usage("empty --tokens"); }
        else if (a == "--jobs") jobs_path = next();
        else if (a == "--n-predict") n_predict = std::stoi(next());
        else if (a == "--logits-out") one.logits_out = next();
        else if (a == "-t") n_threads = std::stoi(next());
        else return usage(("unknown flag " + a).c_str());
    }
    std::vector<job> jobs;
    if (!jobs_path.empty()) {
        // One job a line: CVEC|- SCALE TOKEN,TOKEN,... LOGITS_OUT
        FILE * f = fopen(jobs_path.c_str(), "r");
        if (!f) return usage("cannot read --jobs file");
        char cvec[4096], toks[65536], out[4096];
        float scale;
        while (fscanf(f, "%4095s %f %65535s %4095s", cvec, &scale, toks, out) == 4) {
            job j;
            j.cvec = cvec; j.scale = scale; j.logits_out = out;
            if (!parse_tokens(toks, j.prompt)) return usage("a job has no tokens");
            jobs.push_back(j);
        }
        fclose(f);
    } else {
        jobs.push_back(one);
    }
    if (model_path.empty() || jobs.empty() || jobs[0].prompt.empty()) return usage("need -m MODEL.gguf and --tokens ids or --jobs FILE");
    size_t longest = 0;
    for (auto & j : jobs) longest = std::max(longest, j.prompt.size());

    // Jobs switch the control vector on one context: keep llama.cpp from reusing a
    // graph built for the previous job's (llama-cli sets its vector once, before any graph).
    setenv("LLAMA_GRAPH_REUSE_DISABLE", "1", 1);
    llama_log_set([](enum ggml_log_level level, const char * text, void *) {
        if (level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
    }, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) return usage("cannot load model");

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = longest + n_predict + 8;
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) return usage("cannot create context");

    for (auto & j : jobs) {
        int rc = run_job(model, ctx, j, n_predict);
        if (rc != 0) return rc;
    }

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
