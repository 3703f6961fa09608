/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Benchmark figures: each is printed at once as a "name: value" line and
 * kept, in order, for the JSON object written at the end.
 */
#ifndef BENCH_FIG_H
#define BENCH_FIG_H

/* A number with @prec decimals; NaN and infinities print as "nan". */
void bench_fig_num(const char *name, double v, int prec);
void bench_fig_str(const char *name, const char *v);
/*
 * A member whose value is JSON text already (an array, an object: the
 * "plots" the bench declares, a distribution), written as it is after the
 * figures and not printed; bench_fig keeps its own copy.
 */
void bench_fig_raw(const char *name, const char *json);
/* Write every figure kept so far to @path; @prog names the caller in errors. */
int bench_fig_json(const char *path, const char *prog);

#endif /* BENCH_FIG_H */
