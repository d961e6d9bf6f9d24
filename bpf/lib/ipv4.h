/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 header access, validation and TTL handling. */
#ifndef SKIFF_BPF_IPV4_H
#define SKIFF_BPF_IPV4_H

#include "common.h"
#include "csum.h"

/*
 * Returns the IPv4 header after the Ethernet header once it is complete and
 * self-consistent (version 4, IHL >= 5, options inside the frame, total
 * length covering the header and not beyond the frame), else NULL.
 */
static __always_inline struct iphdr *ipv4_header(struct __sk_buff *skb)
{
	void *data_end = SKB_DATA_END(skb);
	struct iphdr *ip = SKB_DATA(skb) + ETH_HLEN;
	__u32 hlen, tot_len;

	if ((void *)(ip + 1) > data_end)
		return NULL;
	if (ip->version != 4 || ip->ihl < 5)
		return NULL;
	hlen = (__u32)ip->ihl * 4;
	if ((void *)ip + hlen > data_end)
		return NULL;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hlen || tot_len > skb->len - ETH_HLEN)
		return NULL;
	return ip;
}

/* Forwarding hop: decrement TTL with an incremental checksum fix. */
static __always_inline void ipv4_dec_ttl(struct iphdr *ip)
{
	__be16 old = *(__be16 *)&ip->ttl; /* ttl and protocol share a word */

	ip->ttl--;
	csum_replace2(&ip->check, old, *(__be16 *)&ip->ttl);
}

#endif /* SKIFF_BPF_IPV4_H */
