/*
 * lg_stream: the load process side of statecast-loadgen. The driver
 * (loadgen.c) forks one process per share of the streams and calls
 * lg_child_run() in it; everything in lg_stream.c runs only there.
 */
#ifndef STATECAST_BENCH_LG_STREAM_H
#define STATECAST_BENCH_LG_STREAM_H

#include "lg_common.h"

/*
 * Open streams first .. first+n-1 (global indexes: they pick the source
 * address) and serve the parent's messages until LG_C_STOP, answered with
 * LG_M_RESULT; returns then, and the caller _exit()s. ctl_in is the read end
 * of the parent -> child pipe, up_out the write end of child -> parent; both
 * stay open (the process ends right after). o is borrowed for the call.
 * It may end the process itself: exit 0 when the parent is gone, 3 when a
 * pipe write fails, 4 on a malformed LG_C_FINAL, 2 through lg_die(). What it
 * allocates lives until the process exits.
 */
void lg_child_run(const lg_opts_t *o, int idx, long first, long n, int ctl_in, int up_out);

#endif
