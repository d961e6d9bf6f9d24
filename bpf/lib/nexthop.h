/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The FIB's answers toward other nodes (skiff_nexthops): a pod's flow to
 * another node's PodCIDR is sent by the answer its first packet got,
 * until it expires or a packet is too big for its MTU, and asks the FIB
 * again only then. Entries are read in place and only ever replaced whole
 * (bpf_map_update_elem()), never written into, so a reader sees one
 * answer, not parts of two. Traced packets neither read nor write them:
 * they show what the FIB says now.
 */
#ifndef SKIFF_BPF_NEXTHOP_H
#define SKIFF_BPF_NEXTHOP_H

#include "common.h"
#include "maps.h"

static __always_inline struct skiff_nexthop *nexthop_lookup(__be32 saddr, __be32 node_ip)
{
	struct skiff_nexthop_key key = { .saddr = saddr, .node_ip = node_ip };

	return bpf_map_lookup_elem(&skiff_nexthops, &key);
}

/*
 * Whether a cached answer still holds for this packet at now: not expired,
 * and the packet within the path MTU the FIB reported (none reported: no
 * packet is). A GSO packet is not checked, as a lookup for it would not
 * be (the kernel checks its segments).
 */
static __always_inline int nexthop_holds(const struct __sk_buff *skb, const struct iphdr *ip,
					 const struct skiff_nexthop *nh, __u64 now)
{
	if (now >= nh->expires)
		return 0;
	return skb->gso_size || (nh->mtu && bpf_ntohs(ip->tot_len) <= nh->mtu);
}

/* Remember a resolved FIB answer, replacing the entry if there is one. */
static __always_inline void nexthop_store(__be32 saddr, __be32 node_ip, const struct bpf_fib_lookup *fib, __u64 now)
{
	struct skiff_nexthop_key key = { .saddr = saddr, .node_ip = node_ip };
	struct skiff_nexthop nh = {
		.expires = now + SKIFF_NEXTHOP_TTL_NS,
		.ifindex = fib->ifindex,
		/* The path MTU the lookup reported. Given no length (a GSO
		 * packet), a kernel may report none: mtu_result shares
		 * tot_len's 0, unknown. */
		.mtu = fib->mtu_result,
	};

	__builtin_memcpy(nh.smac, fib->smac, SKIFF_ETH_ALEN);
	__builtin_memcpy(nh.dmac, fib->dmac, SKIFF_ETH_ALEN);
	bpf_map_update_elem(&skiff_nexthops, &key, &nh, BPF_ANY);
}

#endif /* SKIFF_BPF_NEXTHOP_H */
