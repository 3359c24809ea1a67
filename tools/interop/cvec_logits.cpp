// refusalkit-cvec-logits: runs llama.cpp itself on given prompt token ids, with or
// without a control vector, and reports the first generated token's logits and a
// greedy completion. It exists so that refusalkit's interop check compares against
// llama.cpp's own code paths: the control vector is read by common_control_vector_load
// (what llama-cli's --control-vector-scaled calls) and applied by llama_set_adapter_cvec
// with the same default layer range llama-cli uses ([1, n_layer]).
//
//   refusalkit-cvec-logits -m MODEL.gguf [--cvec F.gguf --scale C] \
//       --tokens 1,2,3 [--n-predict N] [--logits-out F.f32] [-t THREADS]
//
// Output: --logits-out gets n_vocab little-endian float32 logits of the first
// generated position; stdout gets one line "tokens: id id id ..." (greedy, stops at
// an end-of-generation token or after N tokens).
#include "common.h"
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

static int usage(const char * msg) {
    fprintf(stderr, "refusalkit-cvec-logits: %s\n", msg);
    return 2;
}

int main(int argc, char ** argv) {
    std::string model_path, cvec_path, logits_out, tokens_arg;
    float scale = 1.0f;
    int n_predict = 0, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) { fprintf(stderr, "missing value for %s\n", a.c_str()); exit(2); }
            return argv[++i];
        };
        if (a == "-m") model_path = next();
        else if (a == "--cvec") cvec_path = next();
        else if (a == "--scale") scale = std::stof(next());
        else if (a == "--tokens") tokens_arg = next();
        else if (a == "--n-predict") n_predict = std::stoi(next());
        else if (a == "--logits-out") logits_out = next();
        else if (a == "-t") n_threads = std::stoi(next());
        else return usage(("unknown flag " + a).c_str());
    }
    if (model_path.empty() || tokens_arg.empty()) return usage("need -m MODEL.gguf and --tokens ids");

    std::vector<llama_token> prompt;
    {
        std::stringstream ss(tokens_arg);
        std::string tok;
        while (std::getline(ss, tok, ',')) prompt.push_back((llama_token) std::stol(tok));
    }

    llama_log_set([](enum ggml_log_level level, const char * text, void *) {
        if (level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
    }, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) return usage("cannot load model");

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = prompt.size() + n_predict + 8;
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) return usage("cannot create context");

    if (!cvec_path.empty()) {
        std::vector<common_control_vector_load_info> infos = {{scale, cvec_path}};
        common_control_vector_data cv = common_control_vector_load(infos);
        if (cv.n_embd == -1) return usage("control vector rejected by llama.cpp");
        // llama-cli's defaults: layers 1 .. n_layer (common_init_from_params).
        if (llama_set_adapter_cvec(ctx, cv.data.data(), cv.data.size(), cv.n_embd, 1,
                                   llama_model_n_layer(model)) != 0) {
            return usage("llama_set_adapter_cvec failed");
        }
    }

    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    if (llama_decode(ctx, llama_batch_get_one(prompt.data(), prompt.size())) != 0) {
        return usage("llama_decode failed on the prompt");
    }
    const float * logits = llama_get_logits_ith(ctx, -1);
    if (!logits_out.empty()) {
        FILE * f = fopen(logits_out.c_str(), "wb");
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

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
