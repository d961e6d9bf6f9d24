/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The masquerade port range (config nat_port_min..nat_port_max): where a
 * claim looks when a flow's own port is taken, from a random port on and
 * for a bounded number of tries. Used by the masquerade (snat.h) and by
 * services that translate the source (service.h).
 */
#ifndef SKIFF_BPF_NAT_PORTS_H
#define SKIFF_BPF_NAT_PORTS_H

#include "common.h"

#define NAT_PORT_TRIES 32

struct nat_port_walk {
	__u32 start, span;
	__u16 lo;
};

/* 0, or -SKIFF_DROP_NAT_NO_PORT when no range is configured. */
static __always_inline int nat_port_walk_init(struct nat_port_walk *w, const struct skiff_config *cfg)
{
	if (!cfg || !cfg->nat_port_min || cfg->nat_port_max < cfg->nat_port_min)
		return -SKIFF_DROP_NAT_NO_PORT;
	w->lo = cfg->nat_port_min;
	w->span = (__u32)cfg->nat_port_max - cfg->nat_port_min + 1;
	w->start = bpf_get_prandom_u32() % w->span;
	return 0;
}

/* The walk's i-th port in network order; 0 once past the range's end. */
static __always_inline __be16 nat_port_walk_at(const struct nat_port_walk *w, __u32 i)
{
	if (i >= w->span)
		return 0;
	return bpf_htons((__u16)(w->lo + (w->start + i) % w->span));
}

#endif /* SKIFF_BPF_NAT_PORTS_H */
