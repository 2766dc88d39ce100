/* harness.h — a tiny test harness: CHECK macros that count and report. */
#ifndef BN_TEST_HARNESS_H
#define BN_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>

extern int bn_test_failures;
extern int bn_test_checks;

#define CHECK(cond) do { bn_test_checks++; if (!(cond)) { bn_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { bn_test_checks++; if (!(cond)) { bn_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_OK(expr) do { bn_status st_ = (expr); bn_test_checks++; if (st_ != BN_OK) { \
    bn_test_failures++; fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, \
    #expr, bn_status_name(st_), bn_last_error()); } } while (0)

/* Run a test function, print its name. */
#define RUN(fn) do { fprintf(stderr, "-- %s\n", #fn); fn(); } while (0)

/* Prints a summary; returns the process exit code. */
int bn_test_finish(const char *suite);

/* Path helpers: $BN_SOURCE_DIR/<rel> (or ./<rel>), in a static buffer ring. */
const char *bn_test_src(const char *rel);
/* A fresh temporary directory for this test process. */
const char *bn_test_tmpdir(void);
/* Read a whole binary file; returns malloc'd buffer, sets *n bytes. NULL on error. */
void *bn_test_read(const char *path, size_t *n);

/* SPEC §2 tolerance between logits and a reference, per position: mean |d| <
 * tol_mean, max |d| < tol_rel * max |ref|, argmax equal wherever the
 * reference's top-2 margin > 0.5 (defaults 0.1 and 0.03). Prints the worst
 * figures under `what`; returns the number of rows outside the tolerance. */
int bn_test_compare_logits_tol(const char *what, const float *got, const float *ref, int n_rows, int n_vocab,
                               double tol_mean, double tol_rel);
int bn_test_compare_logits(const char *what, const float *got, const float *ref, int n_rows, int n_vocab);

/* Logits of one batch of n ids through a fresh context (all rows, 2 threads,
 * kernels NULL = the best): malloc'd [n x n_vocab], NULL (and a failed
 * check) on error. */
struct bn_model;
float *bn_test_batch_logits(const struct bn_model *m, const int32_t *ids, int n, const char *kernels);

#endif
