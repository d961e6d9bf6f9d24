/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Answering a connection attempt to a service without backends the way
 * kube-proxy's REJECT does: a TCP RST for TCP, an ICMP port unreachable
 * for UDP. The packet is rewritten in place into the answer (addresses
 * swapped), ready to be sent back where it came from.
 */
#ifndef SKIFF_BPF_REJECT_H
#define SKIFF_BPF_REJECT_H

#include <linux/tcp.h>

#include "common.h"
#include "eth.h"
#include "redirect.h"

#define REJECT_TTL 64

/* <linux/icmp.h> pulls in libc headers; the 8 bytes we need: */
struct reject_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};
#define REJECT_ICMP_DEST_UNREACH 3
#define REJECT_ICMP_PORT_UNREACH 3
#define REJECT_ICMP_FRAG_NEEDED 4

/* One's complement sum of n 16-bit words, folded. */
static __always_inline __u16 csum_words(const __u16 *w, int n, __u32 sum)
{
#pragma unroll
	for (int i = 0; i < 32; i++) {
		if (i >= n)
			break;
		sum += w[i];
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline void reject_ip_header(struct iphdr *ip, __be32 saddr, __be32 daddr, __u8 proto, __u16 tot_len)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(tot_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = REJECT_TTL;
	ip->protocol = proto;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = 0;
	ip->check = csum_words((__u16 *)ip, 10, 0);
}

static __always_inline void reject_swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* SYN (or any segment) -> RST, per RFC 793's reset generation. */
static __always_inline int reject_tcp(struct __sk_buff *skb)
{
	const __u32 out_len = ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr);
	struct tcphdr *tcp, in_tcp;
	__be32 saddr, daddr;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 seg_len;
	__u16 hlen;

	ip = SKB_DATA(skb) + ETH_HLEN;
	if ((void *)(ip + 1) > SKB_DATA_END(skb) || ip->ihl != 5)
		return -SKIFF_DROP_MALFORMED;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(*ip), &in_tcp, sizeof(in_tcp)) < 0)
		return -SKIFF_DROP_MALFORMED;
	if (in_tcp.rst)
		return -SKIFF_DROP_NO_BACKEND; /* never answer a reset */
	saddr = ip->saddr;
	daddr = ip->daddr;
	hlen = (__u16)in_tcp.doff * 4;
	seg_len = bpf_ntohs(ip->tot_len) - sizeof(*ip) - hlen + in_tcp.syn + in_tcp.fin;

	if (bpf_skb_change_tail(skb, out_len, 0) < 0)
		return -SKIFF_DROP_NO_BACKEND;
	eth = SKB_DATA(skb);
	ip = (void *)(eth + 1);
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > SKB_DATA_END(skb))
		return -SKIFF_DROP_MALFORMED;

	reject_swap_macs(eth);
	reject_ip_header(ip, daddr, saddr, IPPROTO_TCP, sizeof(*ip) + sizeof(*tcp));
	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = in_tcp.dest;
	tcp->dest = in_tcp.source;
	tcp->doff = 5;
	tcp->rst = 1;
	if (in_tcp.ack) {
		tcp->seq = in_tcp.ack_seq;
	} else {
		tcp->ack = 1;
		tcp->ack_seq = bpf_htonl(bpf_ntohl(in_tcp.seq) + seg_len);
	}
	{
		/* pseudo header: saddr, daddr, zero+proto, TCP length */
		__u32 sum = (daddr & 0xffff) + (daddr >> 16) + (saddr & 0xffff) + (saddr >> 16) +
			    bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*tcp));

		tcp->check = csum_words((__u16 *)tcp, sizeof(*tcp) / 2, sum);
	}
	return 0;
}

/*
 * Packet -> ICMP destination unreachable with the given code, quoting the
 * offending IP header and the first 8 bytes after it (RFC 792), from the
 * packet's destination or, when from is set, from that address. next_mtu
 * is the next-hop MTU of a "fragmentation needed" (RFC 1191), else 0.
 */
static __always_inline int icmp_unreach_reply(struct __sk_buff *skb, __u8 code, __u16 next_mtu, __be32 from)
{
	const __u32 quote = sizeof(struct iphdr) + 8;
	const __u32 out_len = ETH_HLEN + sizeof(struct iphdr) + sizeof(struct reject_icmphdr) + quote;
	struct {
		struct reject_icmphdr icmp;
		__u8 orig[sizeof(struct iphdr) + 8];
	} msg = {};
	__be32 saddr, daddr;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *payload;

	ip = SKB_DATA(skb) + ETH_HLEN;
	if ((void *)(ip + 1) > SKB_DATA_END(skb) || ip->ihl != 5)
		return -SKIFF_DROP_MALFORMED;
	saddr = ip->saddr;
	daddr = from ? from : ip->daddr;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, msg.orig, quote) < 0)
		return -SKIFF_DROP_MALFORMED;
	msg.icmp.type = REJECT_ICMP_DEST_UNREACH;
	msg.icmp.code = code;
	msg.icmp.unused = bpf_htonl(next_mtu);
	msg.icmp.checksum = csum_words((__u16 *)&msg, sizeof(msg) / 2, 0);

	if (bpf_skb_change_tail(skb, out_len, 0) < 0)
		return -SKIFF_DROP_MALFORMED;
	eth = SKB_DATA(skb);
	ip = (void *)(eth + 1);
	payload = (void *)(ip + 1);
	if (payload + sizeof(msg) > SKB_DATA_END(skb))
		return -SKIFF_DROP_MALFORMED;
	reject_swap_macs(eth);
	reject_ip_header(ip, daddr, saddr, IPPROTO_ICMP, sizeof(*ip) + sizeof(msg));
	__builtin_memcpy(payload, &msg, sizeof(msg));
	return 0;
}

/* UDP datagram -> ICMP port unreachable from the address it was sent to. */
static __always_inline int reject_udp(struct __sk_buff *skb)
{
	return icmp_unreach_reply(skb, REJECT_ICMP_PORT_UNREACH, 0, 0);
}

static __always_inline int reject(struct __sk_buff *skb, __u8 proto)
{
	return proto == IPPROTO_TCP ? reject_tcp(skb) : reject_udp(skb);
}

/* Answer in place and send the answer back where the packet came from:
 * into the pod (into_peer) or out of the device it arrived on. */
static __always_inline int reject_back(struct __sk_buff *skb, __u8 proto, int into_peer, __u32 *reason)
{
	int ret = reject(skb, proto);

	if (ret < 0)
		return ret;
	*reason = SKIFF_DROP_NO_BACKEND;
	return into_peer ? skiff_redirect_peer(skb, skb->ifindex) : skiff_redirect(skb, skb->ifindex);
}

#endif /* SKIFF_BPF_REJECT_H */
