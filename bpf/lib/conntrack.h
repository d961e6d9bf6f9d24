/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking for translated (service) flows. */
#ifndef SKIFF_BPF_CONNTRACK_H
#define SKIFF_BPF_CONNTRACK_H

#include "common.h"
#include "l4.h"
#include "maps.h"
#include "metrics.h"

static __always_inline void ct_key_init(struct skiff_ct_key *k, __be32 saddr, __be32 daddr, const struct l4_info *l4,
					__u8 dir)
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

/* The conntrack table's accessors: nothing else touches skiff_ct. */
static __always_inline struct skiff_ct_value *ct_lookup(const struct skiff_ct_key *key)
{
	return bpf_map_lookup_elem(&skiff_ct, key);
}

/* Entry accounting (see SKIFF_CT_ENTRY_INSERTED). */
static __always_inline long ct_insert(const struct skiff_ct_key *key, const struct skiff_ct_value *val, __u64 flags)
{
	long err = bpf_map_update_elem(&skiff_ct, key, val, flags);

	if (!err)
		metrics_count(SKIFF_CT_ENTRY_INSERTED, SKIFF_DIR_EGRESS, 0);
	return err;
}

static __always_inline void ct_remove(const struct skiff_ct_key *key)
{
	if (!bpf_map_delete_elem(&skiff_ct, key))
		metrics_count(SKIFF_CT_ENTRY_REMOVED, SKIFF_DIR_EGRESS, 0);
}

/* Writes a REPLY entry whether or not one is there (a stale one from an
 * earlier connection is replaced, which adds no entry). */
static __always_inline long ct_put(const struct skiff_ct_key *key, const struct skiff_ct_value *val)
{
	long err = ct_insert(key, val, BPF_NOEXIST);

	if (err == -SKIFF_EEXIST)
		err = bpf_map_update_elem(&skiff_ct, key, val, BPF_EXIST); /* no new entry: not counted */
	return err;
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
	long err = ct_insert(fwd_key, fwd, BPF_NOEXIST);

	if (err == -SKIFF_EEXIST)
		return 1;
	if (err < 0)
		return -SKIFF_DROP_CT_FULL;
	if (ct_put(rev_key, rev) < 0) {
		ct_remove(fwd_key);
		return -SKIFF_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SKIFF_BPF_CONNTRACK_H */
