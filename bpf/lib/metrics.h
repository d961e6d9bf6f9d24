/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet/byte counters keyed by {reason, direction}. */
#ifndef SKIFF_BPF_METRICS_H
#define SKIFF_BPF_METRICS_H

#include "maps.h"

static __always_inline void metrics_count(__u32 reason, __u32 dir, __u32 bytes)
{
	__u32 idx = SKIFF_METRICS_INDEX(reason, dir);
	struct skiff_metrics_value *m;

	m = bpf_map_lookup_elem(&skiff_metrics, &idx);
	if (likely(m)) {
		/* Per-CPU slot: no atomics needed. */
		m->packets++;
		m->bytes += bytes;
	}
}

#endif /* SKIFF_BPF_METRICS_H */
