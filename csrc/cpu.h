/* Which of the WT_VECTOR_CLONES versions (common.h) this CPU runs: one wheel serves every
 * x86-64 CPU, so a report says which code path produced its numbers. */
#ifndef WT_CPU_H
#define WT_CPU_H

const char *wt_vector_isa(void);

#endif
