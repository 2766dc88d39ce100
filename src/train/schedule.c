/* schedule.c — learning-rate schedules: constant, warmup + cosine, linear,
 * warmup-stable-decay, and BitNet b1.58's two-stage schedule (a high peak
 * decayed over the first half, then a lower second stage with weight decay
 * switched off). */
#include "train/train.h"

#include <math.h>
#include <string.h>

static const char *names[] = {"constant", "cosine", "linear", "wsd", "two-stage"};

bn_status bn_tr_schedule_parse(const char *name, bn_tr_sched_kind *kind) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, names[i])) { *kind = (bn_tr_sched_kind)i; return BN_OK; }
    if (!strcmp(name, "bitnet")) { *kind = BN_TR_SCHED_TWO_STAGE; return BN_OK; }
    return bn_fail(BN_ERR_INVALID_ARG, "unknown lr schedule '%s' (constant, cosine, linear, "
                   "wsd, two-stage)", name);
}

const char *bn_tr_schedule_name(bn_tr_sched_kind kind) {
    return (unsigned)kind < 5 ? names[kind] : "?";
}

/* fraction in [0,1] of the way from a to b */
static double frac(int64_t x, int64_t a, int64_t b) {
    if (b <= a) return 1.0;
    double f = (double)(x - a) / (double)(b - a);
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

void bn_tr_schedule_at(const bn_tr_schedule *s, int64_t step, double *lr, double *wd) {
    const double peak = s->lr, lo = s->min_lr;
    const int64_t total = s->total > 0 ? s->total : 1;
    *wd = s->weight_decay;
    if (s->kind == BN_TR_SCHED_CONSTANT) {
        *lr = step < s->warmup ? peak * (double)(step + 1) / (double)s->warmup : peak;
        return;
    }
    if (step < s->warmup) {
        *lr = peak * (double)(step + 1) / (double)s->warmup;
        return;
    }
    double f;
    switch (s->kind) {
    case BN_TR_SCHED_COSINE:
        f = frac(step, s->warmup, total - 1);
        *lr = lo + 0.5 * (peak - lo) * (1.0 + cos(M_PI * f));
        break;
    case BN_TR_SCHED_LINEAR:
        f = frac(step, s->warmup, total - 1);
        *lr = peak + (lo - peak) * f;
        break;
    case BN_TR_SCHED_WSD: {
        double df = s->wsd_decay_frac > 0 ? s->wsd_decay_frac : 0.2;
        int64_t decay_start = total - (int64_t)ceil(df * (double)total);
        if (decay_start < s->warmup) decay_start = s->warmup;
        *lr = step < decay_start ? peak : peak + (lo - peak) * frac(step, decay_start - 1, total - 1);
        break;
    }
    case BN_TR_SCHED_TWO_STAGE: {
        /* stage 1: linear decay from the peak over the first half; stage 2:
         * from stage2_lr_frac * peak down to min_lr, weight decay off */
        int64_t mid = total / 2;
        double p2 = peak * (s->stage2_lr_frac > 0 ? s->stage2_lr_frac : 0.5);
        if (step < mid) {
            f = frac(step, s->warmup, mid);
            *lr = peak + (p2 - peak) * 0.5 * f;  /* ends halfway towards stage 2's level */
        } else {
            *lr = p2 + (lo - p2) * frac(step, mid, total - 1);
            *wd = 0;
        }
        break;
    }
    default:
        *lr = peak;
    }
}
