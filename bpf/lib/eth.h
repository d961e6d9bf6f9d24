/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ethernet header access and rewriting. */
#ifndef SKIFF_BPF_ETH_H
#define SKIFF_BPF_ETH_H

#include "common.h"

/* Returns the Ethernet header, or NULL when the frame is shorter than one. */
static __always_inline struct ethhdr *eth_header(struct __sk_buff *skb)
{
	struct ethhdr *eth = SKB_DATA(skb);

	if ((void *)(eth + 1) > SKB_DATA_END(skb))
		return NULL;
	return eth;
}

/* 1 when the frame carries IPv4, 0 when it carries another protocol, or
 * -SKIFF_DROP_MALFORMED when it is shorter than an Ethernet header. */
static __always_inline int eth_is_ipv4(struct __sk_buff *skb)
{
	struct ethhdr *eth = eth_header(skb);

	if (!eth)
		return -SKIFF_DROP_MALFORMED;
	return eth->h_proto == bpf_htons(ETH_P_IP);
}

static __always_inline void eth_copy_mac(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

/* Rewrite both MACs in place; the caller has bounds-checked eth. */
static __always_inline void eth_set_macs(struct ethhdr *eth, const __u8 *src, const __u8 *dst)
{
	eth_copy_mac(eth->h_source, src);
	eth_copy_mac(eth->h_dest, dst);
}

#endif /* SKIFF_BPF_ETH_H */
