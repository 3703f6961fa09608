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
/* JSON text (malloc'ed; kept and freed by no one) for the file only. */
void bench_fig_raw(const char *name, char *json);
/* Write every figure kept so far to @path; @prog names the caller in errors. */
int bench_fig_json(const char *path, const char *prog);

#endif /* BENCH_FIG_H */
