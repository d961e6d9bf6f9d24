/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking for translated (service) flows. */
#ifndef SKIFF_BPF_CONNTRACK_H
#define SKIFF_BPF_CONNTRACK_H

#include "common.h"
#include "l4.h"
#include "maps.h"

static __always_inline void ct_key_init(struct skiff_ct_key *k, __be32 saddr, __be32 daddr,
					const struct l4_info *l4, __u8 dir)
{
	k->saddr = saddr;
	k->daddr = daddr;
	k->sport = l4->sport;
	k->dport = l4->dport;
	k->proto = l4->proto;
	k->dir = dir;
	k->pad = 0;
}

/* Account one packet to an entry and follow TCP's life cycle. */
static __always_inline void ct_touch(struct skiff_ct_value *ct, const struct l4_info *l4, __u32 bytes)
{
	ct->last_seen_ns = bpf_ktime_get_ns();
	ct->packets++;
	ct->bytes += bytes;
	if (l4->tcp_flags & (TCP_FLAG_FIN_BIT | TCP_FLAG_RST_BIT))
		ct->flags |= SKIFF_CT_F_CLOSING;
}

/*
 * Insert a new connection: the FORWARD entry first, and only if no other
 * CPU won the race for this tuple; then its REPLY entry. Returns 0 when
 * inserted, 1 when another CPU inserted first (look it up and use it), or
 * -SKIFF_DROP_CT_FULL.
 */
static __always_inline int ct_create(const struct skiff_ct_key *fwd_key, const struct skiff_ct_value *fwd,
				     const struct skiff_ct_key *rev_key, const struct skiff_ct_value *rev)
{
	long err = bpf_map_update_elem(&skiff_ct, fwd_key, fwd, BPF_NOEXIST);

	if (err == -17 /* EEXIST */)
		return 1;
	if (err < 0)
		return -SKIFF_DROP_CT_FULL;
	if (bpf_map_update_elem(&skiff_ct, rev_key, rev, BPF_ANY) < 0) {
		bpf_map_delete_elem(&skiff_ct, fwd_key);
		return -SKIFF_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SKIFF_BPF_CONNTRACK_H */
