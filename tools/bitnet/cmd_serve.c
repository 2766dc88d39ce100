/* cmd_serve.c — `bitnet serve`: the OpenAI-compatible HTTP server. The
 * server runs on its own threads; this thread only waits for SIGTERM/SIGINT
 * (blocked everywhere and taken with sigtimedwait, so no handler runs in
 * an arbitrary thread) and then drains the server. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda_opts.h"
#include "server/server.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: bitnet serve -m MODEL [options]\n\n"
            "OpenAI-compatible HTTP server with continuous batching.\n"
            "Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
            "GET /health, POST /tokenize, POST /detokenize, GET /metrics (Prometheus).\n\n"
            "  -m, --model MODEL      .gguf file, Hugging Face folder or hf:ORG/NAME\n"
            "  -t, --tokenizer FILE   tokenizer (default: the one stored with the model)\n"
            "      --host ADDR        address to listen on (default 127.0.0.1)\n"
            "      --port N           port (default 8080; 0: any free port, printed)\n"
            "      --parallel N       slots decoded together (default 4)\n"
            "      --ctx N            positions per slot (default 2048)\n"
            "      --batch N          tokens per forward step (default 512)\n"
            "      --threads N        CPU threads (default: all)\n"
            "      --max-queue N      waiting requests before 503 (default 64)\n"
            "      --max-body BYTES   request body limit, 413 above (default 1048576)\n"
            "      --timeout S        idle / half-sent connection timeout (default 30)\n"
            "      --keys-db FILE     require API keys from this database (bitnet keys)\n"
            "      --insecure-no-auth allow a non-loopback --host without API keys\n"
            "      --model-name NAME  model id clients send (default: file name of -m)\n"
            "      --chat-template T  bitnet | llama3 | chatml (default: detected)\n"
            "      --kernels K        CPU kernel set: ref | avx2 | avx512\n"
            "      --device D         cpu (default) or cuda (a -DBITNET_CUDA=ON build and a GPU)\n"
            "      --cuda OPTS        CUDA switches, as in `bitnet bench --help`\n"
            "      --kv T             KV cache: f32 (default, exact) or f16 (half the memory)\n"
            "      --head H           tied head: f16 (as stored; default) | q8 | q6 | q4\n"
            "      --no-mmap          read the weights into memory instead of mapping the file\n"
            "      --repack           keep a decode copy of the ternary weights (faster decode)\n"
            "      --quiet            log warnings and errors only\n\n"
            "SIGTERM or Ctrl-C stops accepting, finishes the requests in flight, exits.\n");
}

int bn_cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    bn_srv_config cfg;
    bn_srv_config_default(&cfg);
    const char *model = NULL;
    bn_cli_device dev = {BN_DEVICE_CPU, 0, BN_KV_F32};
    bn_cli_model_opts mo = BN_CLI_MODEL_OPTS_INIT;
    int dv;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        if (bn_cli_is_help(a)) { help(stdout); return 0; }
#define VAL() do { if (!(v = bn_cli_value(cmd, argc, argv, &i))) return 2; } while (0)
#define INT(lo, hi) do { VAL(); if (!bn_cli_parse_int(cmd, a, v, lo, hi, &n)) return 2; } while (0)
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--tokenizer")) { VAL(); cfg.tokenizer_path = v; }
        else if (!strcmp(a, "--host")) { VAL(); cfg.host = v; }
        else if (!strcmp(a, "--port")) { INT(0, 65535); cfg.port = (int)n; }
        else if (!strcmp(a, "--parallel")) { INT(1, 256); cfg.parallel = (int)n; }
        else if (!strcmp(a, "--ctx")) { INT(8, 1 << 20); cfg.n_ctx = (int)n; }
        else if (!strcmp(a, "--batch")) { INT(1, 1 << 16); cfg.n_batch = (int)n; }
        else if (!strcmp(a, "--threads")) { INT(0, 1024); cfg.n_threads = (int)n; }
        else if (!strcmp(a, "--max-queue")) { INT(1, 1 << 16); cfg.max_queue = (int)n; }
        else if (!strcmp(a, "--max-body")) { INT(1024, 1L << 30); cfg.max_body = (size_t)n; }
        else if (!strcmp(a, "--timeout")) { INT(1, 3600); cfg.timeout_s = (int)n; }
        else if (!strcmp(a, "--keys-db")) { VAL(); cfg.keys_db = v; }
        else if (!strcmp(a, "--insecure-no-auth")) cfg.insecure_no_auth = true;
        else if (!strcmp(a, "--model-name")) { VAL(); cfg.model_name = v; }
        else if (!strcmp(a, "--chat-template")) { VAL(); cfg.chat_template = v; }
        else if (!strcmp(a, "--kernels")) { VAL(); cfg.kernels = v; }
        else if (!strcmp(a, "--quiet")) cfg.logger.min_level = BN_LOG_WARN;
        else if ((dv = bn_cli_device_option(cmd, argc, argv, &i, &dev)) != 0) {
            if (dv < 0) return 2;
            cfg.device = dev.device;
            cfg.cuda_flags = dev.cuda_flags;
            cfg.kv_type = dev.kv_type;
        } else if ((dv = bn_cli_model_option(cmd, argc, argv, &i, &mo)) != 0) {
            if (dv < 0) return 2;
            cfg.head_bits = mo.head_bits;
            cfg.no_mmap = !mo.use_mmap;
            cfg.repack = mo.repack;
        } else return bn_cli_usage_error(cmd, "unknown option '%s'", a);
#undef INT
#undef VAL
    }
    if (!model) return bn_cli_usage_error(cmd, "-m MODEL is required");

    bn_hub_options ho = bn_hub_default_options();
    char *path = NULL;
    if (bn_hub_resolve_model(model, &ho, &path)) return bn_cli_fail(model);
    cfg.model_path = path;

    /* Signals: blocked in every thread (they inherit this mask), taken here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    bn_server *srv = NULL;
    if (bn_server_start(&cfg, &srv)) {
        free(path);
        return bn_cli_fail("serve");
    }
    fprintf(stderr, "bitnet serve: listening on http://%s%s%s:%d (loading %s)\n",
            strchr(cfg.host, ':') ? "[" : "", cfg.host, strchr(cfg.host, ':') ? "]" : "", bn_server_port(srv), path);
    if (!cfg.keys_db)
        fprintf(stderr, "bitnet serve: no --keys-db: requests are not authenticated%s\n",
                cfg.insecure_no_auth ? " (--insecure-no-auth)" : "; listening on loopback only");
    free(path);

    int rc = 0, last = 0;
    for (;;) {
        struct timespec ts = {0, 100 * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            fprintf(stderr, "bitnet serve: %s: finishing requests in flight, then exiting\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        char err[512];
        int st = bn_server_state(srv, err, sizeof err);
        if (st != last && st == 1) fprintf(stderr, "bitnet serve: ready\n");
        if (st < 0) {
            fprintf(stderr, "bitnet serve: %s\n", err);
            rc = 1;
            break;
        }
        last = st;
    }
    bn_server_shutdown(srv);
    if (!rc) fprintf(stderr, "bitnet serve: stopped\n");
    return rc;
}
