/* test_hub.c — the Hub client against a real HTTP server on loopback
 * (tests/hub_server.py: the Hub's URLs, redirects, etags, Range, faults):
 * fresh pull, second pull transfers nothing, resume after a cut (within a
 * pull and across pulls), corrupted data rejected and removed, offline from
 * the cache, 404/401/403 messages, list / rm / size cap; plus SHA-256
 * against FIPS 180-2 vectors and the name checks and file choice. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "hub/hub.h"

/* ------------------------------------------------------------ sha256 */

static void sha_hex(const void *p, size_t n, char out[65]) {
    bn_sha256 s;
    uint8_t d[32];
    bn_sha256_init(&s);
    bn_sha256_update(&s, p, n);
    bn_sha256_final(&s, d);
    bn_sha256_hex(d, out);
}

static void test_sha256_vectors(void) {
    char h[65];
    sha_hex("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    sha_hex("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m448, strlen(m448), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                       "klmnopqrlmnopqrsmnopqrstnopqrstu";
    sha_hex(m896, strlen(m896), h);
    CHECK(!strcmp(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    /* one million 'a' fed in uneven pieces (exercises the block buffer) */
    char a[1000];
    memset(a, 'a', sizeof a);
    bn_sha256 s;
    uint8_t d[32];
    bn_sha256_init(&s);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t k = step < left ? step : left;
        if (k > sizeof a) k = sizeof a;
        bn_sha256_update(&s, a, k);
        left -= k;
        step = step * 7 % 997 + 1;
    }
    bn_sha256_final(&s, d);
    bn_sha256_hex(d, h);
    CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

/* ------------------------------------------------- names and file choice */

static void test_names(void) {
    CHECK(bn_hub_valid_repo("microsoft/bitnet-b1.58-2B-4T-gguf"));
    CHECK(bn_hub_valid_repo("gpt2"));
    CHECK(!bn_hub_valid_repo("a/b/c"));
    CHECK(!bn_hub_valid_repo("../etc"));
    CHECK(!bn_hub_valid_repo("a--b/c"));   /* would be ambiguous in models--A--B */
    CHECK(!bn_hub_valid_repo("/abs"));
    CHECK(!bn_hub_valid_repo("org/"));
    CHECK(bn_hub_valid_file("model.gguf"));
    CHECK(bn_hub_valid_file("sub/dir/model.safetensors"));
    CHECK(!bn_hub_valid_file("../model.gguf"));
    CHECK(!bn_hub_valid_file("a/../../b"));
    CHECK(!bn_hub_valid_file("/etc/passwd"));
    CHECK(!bn_hub_valid_file("a//b"));
    CHECK(!bn_hub_valid_file("a\\b"));
    CHECK(bn_hub_valid_revision("main"));
    CHECK(bn_hub_valid_revision("refs/pr/1"));
    CHECK(!bn_hub_valid_revision("../x"));
    CHECK(!bn_hub_valid_revision("a b"));
}

static void test_select(void) {
    bn_hub_files f;
    const char *two[] = {"README.md", "ggml-model-f16.gguf", "ggml-model-i2_s.gguf", "config.json"};
    CHECK_OK(bn_hub_select("o/r", two, 4, NULL, &f));
    CHECK(f.n == 1 && !f.folder && !strcmp(f.names[0], "ggml-model-i2_s.gguf"));
    bn_hub_files_free(&f);
    const char *gg[] = {"b.gguf", "a.gguf"};
    CHECK_OK(bn_hub_select("o/r", gg, 2, NULL, &f));
    CHECK(f.n == 1 && !strcmp(f.names[0], "b.gguf"));   /* no i2_s: the first */
    bn_hub_files_free(&f);
    const char *hf[] = {".gitattributes", "README.md", "config.json", "model-00001-of-00002.safetensors",
                        "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                        "tokenizer.json", "tokenizer_config.json", "generation_config.json", "pytorch_model.bin"};
    CHECK_OK(bn_hub_select("o/r", hf, 10, NULL, &f));
    CHECK(f.folder && f.n == 7);
    for (size_t i = 0; i < f.n; i++)
        CHECK_MSG(strcmp(f.names[i], "README.md") && strcmp(f.names[i], "pytorch_model.bin") &&
                  strcmp(f.names[i], ".gitattributes"), "%s selected", f.names[i]);
    bn_hub_files_free(&f);
    CHECK(bn_hub_select("o/r", hf, 10, "nope.gguf", &f) == BN_ERR_NOT_FOUND);
    CHECK(strstr(bn_last_error(), "nope.gguf") != NULL);
    const char *none[] = {"README.md", "pytorch_model.bin"};
    CHECK(bn_hub_select("o/r", none, 2, NULL, &f) == BN_ERR_UNSUPPORTED);
    CHECK(strstr(bn_last_error(), "--file") != NULL);

    /* the listing parser drops hostile names and checks the sha */
    const char *js = "{\"sha\":\"0123456789ABCDEF0123456789abcdef01234567\",\"siblings\":["
                     "{\"rfilename\":\"ok.gguf\"},{\"rfilename\":\"../evil\"},{\"rfilename\":\"/abs\"},"
                     "{\"rfilename\":7},{\"nothing\":1}]}";
    char commit[41], **names = NULL;
    size_t n = 0;
    CHECK_OK(bn_hub_parse_listing(js, strlen(js), commit, &names, &n));
    CHECK(n == 1 && !strcmp(names[0], "ok.gguf"));
    CHECK(!strcmp(commit, "0123456789abcdef0123456789abcdef01234567"));
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    CHECK(bn_hub_parse_listing("{\"sha\":\"xyz\",\"siblings\":[]}", 27, commit, &names, &n) == BN_ERR_FORMAT);
    CHECK(bn_hub_parse_listing("{\"sha\":", 7, commit, &names, &n) == BN_ERR_FORMAT);
}

static void test_resolve_local(void) {
    char *p = NULL;
    bn_hub_options o = {0};
    CHECK_OK(bn_hub_resolve_model("models/x.gguf", &o, &p));
    CHECK(p && !strcmp(p, "models/x.gguf"));
    free(p);
    CHECK(bn_hub_resolve_model("hf:../../etc", &o, &p) == BN_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------ the server */

static pid_t srv_pid = -1;
static FILE *srv_in, *srv_out;
static int srv_port;

static bool srv_start(const char *const *args) {
    int to[2], from[2];
    if (pipe(to) || pipe(from)) return false;
    srv_pid = fork();
    if (srv_pid < 0) return false;
    if (srv_pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]); close(to[1]); close(from[0]); close(from[1]);
        execvp("python3", (char *const *)args);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    srv_in = fdopen(to[1], "w");
    srv_out = fdopen(from[0], "r");
    char line[128];
    if (!srv_out || !fgets(line, sizeof line, srv_out) || sscanf(line, "PORT %d", &srv_port) != 1) return false;
    return true;
}

static void srv_stop(void) {
    if (srv_pid <= 0) return;
    fprintf(srv_in, "quit\n");
    fclose(srv_in);
    int status;
    for (int i = 0; i < 100 && waitpid(srv_pid, &status, WNOHANG) == 0; i++) usleep(20000);
    if (waitpid(srv_pid, &status, WNOHANG) == 0) { kill(srv_pid, SIGTERM); waitpid(srv_pid, &status, 0); }
    fclose(srv_out);
    srv_pid = -1;
}

/* Send a command; for "log", return the lines (static buffer). */
static const char *srv_cmd(const char *cmd) {
    static char buf[1 << 16];
    buf[0] = '\0';
    fprintf(srv_in, "%s\n", cmd);
    fflush(srv_in);
    char line[2048];
    size_t used = 0;
    while (fgets(line, sizeof line, srv_out)) {
        if (!strcmp(line, "ok\n") || !strcmp(line, "end\n")) break;
        size_t n = strlen(line);
        if (used + n + 1 < sizeof buf) { memcpy(buf + used, line, n + 1); used += n; }
    }
    return buf;
}

/* Requests in the log that transferred a file body (GET of resolve or cdn
 * with status 200/206). */
static int body_gets(const char *log) {
    int n = 0;
    for (const char *l = log; *l;) {
        const char *e = strchr(l, '\n');
        if (!e) break;
        if (!strncmp(l, "GET ", 4)) {
            char path[1024];
            int status = 0;
            if (sscanf(l, "GET %1023s %d", path, &status) == 2 && (status == 200 || status == 206) &&
                (strstr(path, "/resolve/") || !strncmp(path, "/cdn/", 5)))
                n++;
        }
        l = e + 1;
    }
    return n;
}

static int log_lines(const char *log) {
    int n = 0;
    for (const char *c = log; *c; c++) n += *c == '\n';
    return n;
}

/* ------------------------------------------------------------ fixtures */

static char dir_tiny[512], dir_gguf[512], dir_gated[512];
static uint8_t *gguf_i2s, *gguf_f16;
static size_t gguf_i2s_n = 1500000 + 13, gguf_f16_n = 400000 + 7;

static uint8_t *rand_bytes(size_t n, uint64_t seed) {
    uint8_t *p = malloc(n);
    uint64_t x = seed;
    memcpy(p, "GGUF", 4);   /* any bytes do; these look like a GGUF */
    for (size_t i = 4; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
    return p;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n);
    if (f) fclose(f);
}

static bool same_file(const char *path, const void *p, size_t n) {
    size_t m = 0;
    void *q = bn_test_read(path, &m);
    bool ok = q && m == n && !memcmp(p, q, n);
    free(q);
    return ok;
}

static void make_fixtures(void) {
    const char *tmp = bn_test_tmpdir();
    /* HF-format model: the tiny packed BitNet fixture, as the repo test/tiny */
    snprintf(dir_tiny, sizeof dir_tiny, "%s", bn_test_src("tests/data/hf-tiny/packed"));
    snprintf(dir_gguf, sizeof dir_gguf, "%s/repo_gguf", tmp);
    snprintf(dir_gated, sizeof dir_gated, "%s/repo_gated", tmp);
    mkdir(dir_gguf, 0755);
    mkdir(dir_gated, 0755);
    gguf_i2s = rand_bytes(gguf_i2s_n, 0x1234567);
    gguf_f16 = rand_bytes(gguf_f16_n, 0x7654321);
    char p[700];
    snprintf(p, sizeof p, "%s/tiny-i2_s.gguf", dir_gguf); write_file(p, gguf_i2s, gguf_i2s_n);
    snprintf(p, sizeof p, "%s/tiny-f16.gguf", dir_gguf);  write_file(p, gguf_f16, gguf_f16_n);
    snprintf(p, sizeof p, "%s/README.md", dir_gguf);      write_file(p, "# tiny\n", 7);
    snprintf(p, sizeof p, "%s/model-i2_s.gguf", dir_gated); write_file(p, gguf_f16, 100000);
}

static char cache_root[600];
static int cache_seq;

/* Options for a fresh (or the current) cache on the test server. */
static bn_hub_options opts(bool fresh) {
    static char endpoint[64];
    static char cache[700];
    if (fresh || !cache[0]) {
        snprintf(cache, sizeof cache, "%s/cache%d", cache_root, cache_seq++);
    }
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv_port);
    bn_hub_options o = {0};
    o.endpoint = endpoint;
    o.cache_dir = cache;
    o.retries = 2;
    return o;
}

static const char *cur_cache(void) { return opts(false).cache_dir; }

static void sha_of_file(const char *path, char out[65]) {
    size_t n = 0;
    void *p = bn_test_read(path, &n);
    sha_hex(p ? p : "", p ? n : 0, out);
    free(p);
}

/* ---------------------------------------------------------------- tests */

static void test_fresh_and_second_pull(void) {
    bn_hub_options o = opts(true);
    srv_cmd("clear");
    char *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny", NULL, NULL, &o, &path));
    CHECK(path && strstr(path, "/models--test--tiny/snapshots/"));
    if (!path) return;
    const char *log = srv_cmd("log");
    CHECK_MSG(body_gets(log) == 2, "fresh pull: %d body transfers\n%s", body_gets(log), log);
    CHECK(strstr(log, "HEAD /test/tiny/resolve/") && strstr(log, " 302 "));   /* LFS redirect seen */
    CHECK(strstr(log, "GET /cdn/"));
    /* the files are the fixture's, byte for byte */
    char a[1100], b[1100];
    size_t n;
    snprintf(a, sizeof a, "%s/config.json", dir_tiny);
    void *src = bn_test_read(a, &n);
    snprintf(b, sizeof b, "%s/config.json", path);
    CHECK(src && same_file(b, src, n));
    free(src);
    snprintf(a, sizeof a, "%s/model.safetensors", dir_tiny);
    src = bn_test_read(a, &n);
    snprintf(b, sizeof b, "%s/model.safetensors", path);
    CHECK(src && same_file(b, src, n));
    /* layout: a relative link to blobs/{sha256}, refs/main = the commit */
    char sha[65], target[256] = "";
    sha_hex(src ? src : "", src ? n : 0, sha);
    free(src);
    ssize_t tn = readlink(b, target, sizeof target - 1);
    if (tn > 0) target[tn] = '\0';
    char want[128];
    snprintf(want, sizeof want, "../../blobs/%s", sha);
    CHECK_MSG(!strcmp(target, want), "link %s", target);
    const char *commit = strrchr(path, '/') + 1;
    snprintf(a, sizeof a, "%s/models--test--tiny/refs/main", cur_cache());
    char *ref = bn_test_read(a, &n);
    CHECK(ref && n == 40 && !memcmp(ref, commit, 40));
    free(ref);
    snprintf(a, sizeof a, "%s/models--test--tiny/blobs/%s", cur_cache(), sha);
    struct stat sb;
    CHECK(lstat(a, &sb) == 0 && S_ISREG(sb.st_mode));

    /* second pull: one listing request, no HEAD, no body */
    srv_cmd("clear");
    char *again = NULL;
    CHECK_OK(bn_hub_pull("test/tiny", NULL, "main", &o, &again));
    CHECK(again && !strcmp(again, path));
    log = srv_cmd("log");
    CHECK_MSG(body_gets(log) == 0 && log_lines(log) == 1, "second pull:\n%s", log);
    free(again);

    /* the same through hf: names */
    CHECK_OK(bn_hub_resolve_model("hf:test/tiny", &o, &again));
    CHECK(again && !strcmp(again, path));
    free(again);
    free(path);
}

static void test_gguf_choice(void) {
    bn_hub_options o = opts(false);
    srv_cmd("clear");
    char *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path));
    CHECK(path && strstr(path, "/tiny-i2_s.gguf"));
    if (path) CHECK(same_file(path, gguf_i2s, gguf_i2s_n));
    const char *log = srv_cmd("log");
    CHECK_MSG(body_gets(log) == 1, "only the i2_s file is fetched:\n%s", log);
    free(path);
    /* hf:ORG/NAME/FILE@REV picks the other one */
    CHECK_OK(bn_hub_resolve_model("hf:test/tiny-gguf/tiny-f16.gguf@main", &o, &path));
    CHECK(path && strstr(path, "/tiny-f16.gguf"));
    if (path) CHECK(same_file(path, gguf_f16, gguf_f16_n));
    free(path);
}

/* a connection cut mid-file: the pull retries with Range and succeeds */
static void test_resume_within_pull(void) {
    bn_hub_options o = opts(true);
    srv_cmd("clear");
    srv_cmd("cut 1");
    char *path = NULL;
    double t0 = bn_time_s();
    CHECK_OK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path));
    double dt = bn_time_s() - t0;
    if (path) CHECK(same_file(path, gguf_i2s, gguf_i2s_n));
    const char *log = srv_cmd("log");
    char want[64];
    snprintf(want, sizeof want, " 206 bytes=%zu-", gguf_i2s_n / 2);
    CHECK_MSG(strstr(log, want) != NULL, "no resume from %zu:\n%s", gguf_i2s_n / 2, log);
    fprintf(stderr, "   cut at %zu of %zu bytes, resumed with Range, %.2f s\n", gguf_i2s_n / 2, gguf_i2s_n, dt);
    free(path);
}

/* a pull that gives up keeps the partial file; the next one resumes it */
static void test_resume_across_pulls(void) {
    bn_hub_options o = opts(true);
    o.retries = 0;
    srv_cmd("cut 1");
    char *path = NULL;
    bn_status st = bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path);
    CHECK(st == BN_ERR_IO && path == NULL);
    CHECK_MSG(strstr(bn_last_error(), "interrupted") && strstr(bn_last_error(), "resumes"), "%s", bn_last_error());
    char sha[65], part[1024];
    sha_hex(gguf_i2s, gguf_i2s_n, sha);
    snprintf(part, sizeof part, "%s/models--test--tiny-gguf/blobs/%s.incomplete", cur_cache(), sha);
    struct stat sb;
    CHECK(stat(part, &sb) == 0 && sb.st_size == (off_t)(gguf_i2s_n / 2));
    long kept = stat(part, &sb) == 0 ? (long)sb.st_size : -1;
    srv_cmd("clear");
    CHECK_OK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path));
    if (path) CHECK(same_file(path, gguf_i2s, gguf_i2s_n));
    const char *log = srv_cmd("log");
    char want[64];
    snprintf(want, sizeof want, " 206 bytes=%ld- %ld", kept, (long)gguf_i2s_n - kept);
    CHECK_MSG(strstr(log, want) != NULL, "want '%s' in\n%s", want, log);
    CHECK(body_gets(log) == 1);
    CHECK(stat(part, &sb) != 0);   /* renamed into place */
    char got[65];
    if (path) sha_of_file(path, got);
    CHECK(path && !strcmp(got, sha));
    free(path);
}

static void test_corrupt_rejected(void) {
    bn_hub_options o = opts(true);
    o.retries = 0;
    srv_cmd("corrupt 1");
    char *path = NULL;
    bn_status st = bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path);
    CHECK(st == BN_ERR_FORMAT && path == NULL);
    CHECK_MSG(strstr(bn_last_error(), "sha256 mismatch") && strstr(bn_last_error(), "deleted"), "%s", bn_last_error());
    char sha[65], p[1024];
    sha_hex(gguf_f16, gguf_f16_n, sha);
    struct stat sb;
    snprintf(p, sizeof p, "%s/models--test--tiny-gguf/blobs/%s", cur_cache(), sha);
    CHECK(stat(p, &sb) != 0);
    snprintf(p, sizeof p, "%s/models--test--tiny-gguf/blobs/%s.incomplete", cur_cache(), sha);
    CHECK(stat(p, &sb) != 0);
    /* nothing cached as if good: offline finds nothing */
    bn_hub_options off = o;
    off.offline = true;
    CHECK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &off, &path) == BN_ERR_NOT_FOUND);
    /* a clean retry works */
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path));
    if (path) CHECK(same_file(path, gguf_f16, gguf_f16_n));
    free(path);
}

static void test_offline(void) {
    /* the cache of test_fresh_and_second_pull's kind: pull, then go offline */
    bn_hub_options o = opts(true);
    char *online = NULL, *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny", NULL, NULL, &o, &online));
    char *gg = NULL;
    CHECK_OK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &gg));
    srv_cmd("clear");
    o.offline = true;
    o.endpoint = "http://127.0.0.1:1";   /* nothing listens there */
    CHECK_OK(bn_hub_pull("test/tiny", NULL, NULL, &o, &path));
    CHECK(online && path && !strcmp(online, path));
    free(path);
    CHECK_OK(bn_hub_resolve_model("hf:test/tiny-gguf", &o, &path));
    CHECK(gg && path && !strcmp(gg, path));
    free(path);
    const char *commit = online ? strrchr(online, '/') + 1 : "";
    CHECK_OK(bn_hub_pull("test/tiny", NULL, commit, &o, &path));   /* by commit sha */
    CHECK(path && online && !strcmp(path, online));
    free(path);
    CHECK(log_lines(srv_cmd("log")) == 0);   /* not one request */
    CHECK(bn_hub_pull("test/other", NULL, NULL, &o, &path) == BN_ERR_NOT_FOUND);
    CHECK_MSG(strstr(bn_last_error(), "offline") && strstr(bn_last_error(), "not in the model cache"), "%s",
              bn_last_error());
    CHECK(bn_hub_pull("test/tiny", "tokenizer.json", NULL, &o, &path) == BN_ERR_NOT_FOUND);
    /* online but unreachable: the message points at HF_HUB_OFFLINE */
    o.offline = false;
    o.retries = 0;
    CHECK(bn_hub_pull("test/tiny", NULL, NULL, &o, &path) == BN_ERR_IO);
    CHECK_MSG(strstr(bn_last_error(), "HF_HUB_OFFLINE=1"), "%s", bn_last_error());
    free(online);
    free(gg);
}

static void test_errors(void) {
    bn_hub_options o = opts(true);
    char *path = NULL;
    CHECK(bn_hub_pull("test/nope", NULL, NULL, &o, &path) == BN_ERR_NOT_FOUND);
    CHECK_MSG(strstr(bn_last_error(), "not found: test/nope"), "%s", bn_last_error());
    CHECK(bn_hub_pull("test/tiny", "missing.gguf", NULL, &o, &path) == BN_ERR_NOT_FOUND);
    CHECK_MSG(strstr(bn_last_error(), "missing.gguf"), "%s", bn_last_error());
    CHECK(bn_hub_pull("test/tiny", NULL, "v9", &o, &path) == BN_ERR_NOT_FOUND);
    CHECK_MSG(strstr(bn_last_error(), "revision not found"), "%s", bn_last_error());
    /* gated: no token -> 401 says to set HF_TOKEN; wrong token -> 403 */
    CHECK(bn_hub_pull("test/gated", NULL, NULL, &o, &path) == BN_ERR_IO);
    CHECK_MSG(strstr(bn_last_error(), "gated or private") && strstr(bn_last_error(), "HF_TOKEN") &&
              strstr(bn_last_error(), "401"), "%s", bn_last_error());
    o.token = "hf_wrong";
    CHECK(bn_hub_pull("test/gated", NULL, NULL, &o, &path) == BN_ERR_IO);
    CHECK_MSG(strstr(bn_last_error(), "403") && strstr(bn_last_error(), "no access"), "%s", bn_last_error());
    o.token = "hf_testtoken";
    CHECK_OK(bn_hub_pull("test/gated", NULL, NULL, &o, &path));
    if (path) CHECK(same_file(path, gguf_f16, 100000));
    free(path);
    /* the token saved by a login ({HF_HOME}/token) is used when none is given */
    bn_hub_options o2 = opts(true);
    char home[700], tokf[800];
    snprintf(home, sizeof home, "%s/hfhome", cache_root);
    snprintf(tokf, sizeof tokf, "%s/token", home);
    mkdir(home, 0755);
    write_file(tokf, "hf_testtoken\n", 13);
    o2.hf_home = home;
    CHECK_OK(bn_hub_pull("test/gated", NULL, NULL, &o2, &path));
    free(path);
    o2.token = "bad\r\nX-Evil: 1";
    CHECK(bn_hub_pull("test/gated", NULL, NULL, &o2, &path) == BN_ERR_INVALID_ARG);
    CHECK(bn_hub_pull("bad name", NULL, NULL, &o, &path) == BN_ERR_INVALID_ARG);
    CHECK(bn_hub_pull("test/tiny", "../x", NULL, &o, &path) == BN_ERR_INVALID_ARG);
}

/* the listing answered 503 twice: retried; three times: a clear error */
static void test_busy_retry(void) {
    bn_hub_options o = opts(true);
    srv_cmd("clear");
    srv_cmd("busy 2");
    char *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path));
    if (path) CHECK(same_file(path, gguf_f16, gguf_f16_n));
    free(path);
    const char *log = srv_cmd("log");
    CHECK_MSG(strstr(log, " 503 ") && strstr(strstr(log, " 503 ") + 1, " 503 "), "%s", log);
    o = opts(true);
    o.retries = 1;
    srv_cmd("busy 2");
    CHECK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path) == BN_ERR_IO);
    CHECK_MSG(strstr(bn_last_error(), "503") && strstr(bn_last_error(), "try again later"), "%s", bn_last_error());
    srv_cmd("busy 0");
}

/* writing fails mid-file (a file-size limit stands in for a full disk):
 * the error says so, the partial file stays, the next pull resumes it */
static void test_no_room(void) {
    bn_hub_options o = opts(true);
    o.retries = 0;
    char msgfile[800];
    snprintf(msgfile, sizeof msgfile, "%s/no_room.txt", cache_root);
    const long limit = 600000;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        char *path = NULL;
        bn_status st = bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path);
        int fd = open(msgfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { ssize_t w = write(fd, bn_last_error(), strlen(bn_last_error())); (void)w; close(fd); }
        _exit((int)st);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == BN_ERR_IO);
    size_t n = 0;
    char *msg = bn_test_read(msgfile, &n);
    CHECK_MSG(msg && strstr(msg, "no room to write") && strstr(msg, "kept"), "%s", msg ? msg : "(none)");
    free(msg);
    char sha[65], part[1024];
    sha_hex(gguf_i2s, gguf_i2s_n, sha);
    snprintf(part, sizeof part, "%s/models--test--tiny-gguf/blobs/%s.incomplete", cur_cache(), sha);
    struct stat sb;
    CHECK(stat(part, &sb) == 0 && sb.st_size == limit);
    srv_cmd("clear");
    char *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny-gguf", NULL, NULL, &o, &path));
    if (path) CHECK(same_file(path, gguf_i2s, gguf_i2s_n));
    free(path);
    char want[64];
    snprintf(want, sizeof want, " 206 bytes=%ld- ", limit);
    CHECK_MSG(strstr(srv_cmd("log"), want) != NULL, "no resume from %ld", limit);
}

/* two threads pull the same model into one cache at once: both succeed,
 * each file crosses the wire once (the per-blob lock) */
typedef struct pull_job { bn_hub_options o; bn_status st; char *path; char err[256]; } pull_job;

static void *pull_thread(void *arg) {
    pull_job *j = arg;
    j->st = bn_hub_pull("test/tiny", NULL, NULL, &j->o, &j->path);
    snprintf(j->err, sizeof j->err, "%s", bn_last_error());
    return NULL;
}

static void test_concurrent(void) {
    pull_job a = {.o = opts(true)}, b;
    b = a;
    srv_cmd("clear");
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, pull_thread, &a) == 0);
    CHECK(pthread_create(&tb, NULL, pull_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_MSG(a.st == BN_OK && b.st == BN_OK, "%s | %s", a.err, b.err);
    CHECK(a.path && b.path && !strcmp(a.path, b.path));
    const char *log = srv_cmd("log");
    CHECK_MSG(body_gets(log) == 2, "%d body transfers:\n%s", body_gets(log), log);
    free(a.path);
    free(b.path);
}

static void set_used(const char *repo_folder, time_t t) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/.bitnet_last_used", cur_cache(), repo_folder);
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0);
}

static void test_list_rm_cap(void) {
    bn_hub_options o = opts(true);
    char *path = NULL;
    CHECK_OK(bn_hub_pull("test/tiny", NULL, NULL, &o, &path)); free(path);
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path)); free(path);
    o.token = "hf_testtoken";
    CHECK_OK(bn_hub_pull("test/gated", NULL, NULL, &o, &path)); free(path);
    set_used("models--test--tiny", 1000000000);
    set_used("models--test--tiny-gguf", 1000000100);
    set_used("models--test--gated", 1000000200);
    bn_hub_cached_model *m = NULL;
    size_t n = 0;
    CHECK_OK(bn_hub_list(&o, &m, &n));
    CHECK(n == 3);
    if (n == 3) {
        CHECK(!strcmp(m[0].repo, "test/gated") && !strcmp(m[2].repo, "test/tiny"));  /* recent first */
        CHECK(m[2].size_bytes == 837752 + 632);
        CHECK(m[1].size_bytes == gguf_f16_n && m[0].size_bytes == 100000);
        CHECK(!strcmp(m[2].refs, "main") && strlen(m[2].commit) == 40 && m[2].n_snapshots == 1);
        CHECK(m[2].last_used == 1000000000);
    }
    free(m);
    CHECK_OK(bn_hub_remove("test/tiny-gguf", &o));
    CHECK(bn_hub_remove("test/tiny-gguf", &o) == BN_ERR_NOT_FOUND);
    CHECK_OK(bn_hub_list(&o, &m, &n));
    CHECK(n == 2);
    free(m);
    /* a cap that only the model being pulled fits: the least recently used
     * others go (test/tiny first, then test/gated) */
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path)); free(path);
    o.size_cap = gguf_f16_n + 100000;
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path)); free(path);
    CHECK_OK(bn_hub_list(&o, &m, &n));
    CHECK_MSG(n == 2 && !strcmp(m[0].repo, "test/tiny-gguf") && !strcmp(m[1].repo, "test/gated"),
              "n=%zu", n);
    free(m);
    o.size_cap = 1;   /* even the pulled one is too big: it stays, the rest go */
    CHECK_OK(bn_hub_pull("test/tiny-gguf", "tiny-f16.gguf", NULL, &o, &path)); free(path);
    CHECK_OK(bn_hub_list(&o, &m, &n));
    CHECK(n == 1 && !strcmp(m[0].repo, "test/tiny-gguf"));
    free(m);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    double t0 = bn_time_s();
    RUN(test_sha256_vectors);
    RUN(test_names);
    RUN(test_select);
    RUN(test_resolve_local);
    make_fixtures();
    snprintf(cache_root, sizeof cache_root, "%s", bn_test_tmpdir());
    char spec_tiny[700], spec_gguf[700], spec_gated[700];
    snprintf(spec_tiny, sizeof spec_tiny, "test/tiny=%s", dir_tiny);
    snprintf(spec_gguf, sizeof spec_gguf, "test/tiny-gguf=%s", dir_gguf);
    snprintf(spec_gated, sizeof spec_gated, "test/gated=%s", dir_gated);
    const char *args[] = {"python3", bn_test_src("tests/hub_server.py"), "--repo", spec_tiny, "--repo", spec_gguf,
                          "--repo", spec_gated, "--gated", "test/gated", "--token", "hf_testtoken", NULL};
    bool up = srv_start(args);
    CHECK_MSG(up, "could not start tests/hub_server.py");
    if (up) {
        RUN(test_fresh_and_second_pull);
        RUN(test_gguf_choice);
        RUN(test_resume_within_pull);
        RUN(test_resume_across_pulls);
        RUN(test_corrupt_rejected);
        RUN(test_offline);
        RUN(test_errors);
        RUN(test_busy_retry);
        RUN(test_no_room);
        RUN(test_concurrent);
        RUN(test_list_rm_cap);
    }
    srv_stop();
    free(gguf_i2s);
    free(gguf_f16);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bn_test_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", bn_test_tmpdir());
    fprintf(stderr, "test_hub: %.2f s\n", bn_time_s() - t0);
    return bn_test_finish("test_hub");
}
