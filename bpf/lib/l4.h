/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP/UDP port and flag access. */
#ifndef SKIFF_BPF_L4_H
#define SKIFF_BPF_L4_H

#include <linux/tcp.h>
#include <linux/udp.h>

#include "common.h"

struct l4_info {
	__u32 off;   /* offset of the L4 header in the frame */
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
};

#define TCP_FLAG_FIN_BIT 0x01
#define TCP_FLAG_SYN_BIT 0x02
#define TCP_FLAG_RST_BIT 0x04

static __always_inline int ipv4_is_fragment_tail(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x1fff)) != 0;
}

/*
 * Fills *l4 for the first (or only) fragment of a TCP or UDP packet.
 * Returns 0, or 1 when the packet has no ports to look at: other
 * protocols, later fragments, an L4 header cut short. Those are forwarded
 * by L3 only; untranslated, a packet to a VIP reaches nothing.
 */
static __always_inline int l4_load(struct __sk_buff *skb, const struct iphdr *ip, struct l4_info *l4)
{
	__be16 ports[2];

	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 1;
	if (ipv4_is_fragment_tail(ip))
		return 1;
	l4->proto = ip->protocol;
	l4->off = ETH_HLEN + (__u32)ip->ihl * 4;
	/* The whole header inside the IP packet (not in Ethernet padding):
	 * translation rewrites its checksum field. */
	if (l4->off + (l4->proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr)) >
	    ETH_HLEN + (__u32)bpf_ntohs(ip->tot_len))
		return 1;
	if (bpf_skb_load_bytes(skb, l4->off, ports, sizeof(ports)) < 0)
		return 1;
	l4->sport = ports[0];
	l4->dport = ports[1];
	l4->tcp_flags = 0;
	if (l4->proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, l4->off + 13, &l4->tcp_flags, 1) < 0)
		return 1;
	return 0;
}

#endif /* SKIFF_BPF_L4_H */
