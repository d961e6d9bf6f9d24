/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP/UDP port and flag access. */
#ifndef SKIFF_BPF_L4_H
#define SKIFF_BPF_L4_H

#include <linux/tcp.h>
#include <linux/udp.h>

#include "common.h"

struct l4_info {
	__u32 off; /* offset of the L4 header in the frame */
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
	__u8 icmp_type; /* ICMP only */
};

#define ICMP_ECHOREPLY_T 0
#define ICMP_DEST_UNREACH_T 3
#define ICMP_ECHO_T 8
#define ICMP_TIME_EXCEEDED_T 11
#define ICMP_PARAMETERPROB_T 12

#define L4_PORTS 0	/* TCP, UDP, ICMP echo: sport/dport are set */
#define L4_NONE 1	/* nothing to translate by */
#define L4_ICMP_ERROR 2 /* an ICMP error: the offending packet is quoted */

#define TCP_FLAG_FIN_BIT 0x01
#define TCP_FLAG_SYN_BIT 0x02
#define TCP_FLAG_RST_BIT 0x04
#define TCP_FLAG_ACK_BIT 0x10

static __always_inline int ipv4_is_fragment_tail(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x1fff)) != 0;
}

/* The bytes of an L4 header l4_load() reads: the ports (or ICMP type and
 * code), the ICMP identifier at 4 and the TCP flags at 13. */
#define L4_HEAD_LEN 14

/*
 * The first L4_HEAD_LEN bytes of the L4 header at off, or of as much of it
 * as the frame holds (len: 8 or L4_HEAD_LEN, checked by the caller against
 * the IP packet's length): read in place when the linear data holds them,
 * the common case, else copied by one helper call. 0, or -1 when the frame
 * is shorter.
 */
static __always_inline int l4_head(struct __sk_buff *skb, __u32 off, __u32 len, __u8 head[L4_HEAD_LEN])
{
	void *data_end = SKB_DATA_END(skb);
	__u8 *p = SKB_DATA(skb) + off;

	if (off <= ETH_HLEN + 60 && (void *)(p + L4_HEAD_LEN) <= data_end) {
		__builtin_memcpy(head, p, L4_HEAD_LEN);
		return 0;
	}
	if (len == L4_HEAD_LEN)
		return bpf_skb_load_bytes(skb, off, head, L4_HEAD_LEN) < 0 ? -1 : 0;
	return bpf_skb_load_bytes(skb, off, head, 8) < 0 ? -1 : 0;
}

/*
 * Fills *l4 for the first (or only) fragment of a TCP or UDP packet, and
 * for ICMP echo (the identifier is the request's source port and the
 * reply's destination port). Returns L4_PORTS, L4_ICMP_ERROR for ICMP
 * errors, or L4_NONE when there are no ports to look at: other protocols,
 * later fragments, a header cut short. Those are forwarded by L3 only.
 */
static __always_inline int l4_load(struct __sk_buff *skb, const struct iphdr *ip, struct l4_info *l4)
{
	__u32 need, end = ETH_HLEN + (__u32)bpf_ntohs(ip->tot_len);
	__u8 head[L4_HEAD_LEN];

	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_ICMP)
		return L4_NONE;
	if (ipv4_is_fragment_tail(ip))
		return L4_NONE;
	l4->proto = ip->protocol;
	l4->off = ETH_HLEN + (__u32)ip->ihl * 4;
	l4->tcp_flags = 0;
	l4->icmp_type = 0;
	/* The whole header inside the IP packet (not in Ethernet padding):
	 * translation rewrites its checksum field. */
	need = l4->proto == IPPROTO_TCP ? sizeof(struct tcphdr) : 8; /* UDP and ICMP: 8 */
	if (l4->off + need > end)
		return L4_NONE;
	if (l4_head(skb, l4->off, l4->proto == IPPROTO_TCP ? L4_HEAD_LEN : 8, head) < 0)
		return L4_NONE;
	if (l4->proto == IPPROTO_ICMP) {
		__be16 id = *(__be16 *)&head[4];

		l4->icmp_type = head[0];
		if (l4->icmp_type == ICMP_DEST_UNREACH_T || l4->icmp_type == ICMP_TIME_EXCEEDED_T ||
		    l4->icmp_type == ICMP_PARAMETERPROB_T)
			return L4_ICMP_ERROR;
		if (l4->icmp_type != ICMP_ECHO_T && l4->icmp_type != ICMP_ECHOREPLY_T)
			return L4_NONE;
		l4->sport = l4->icmp_type == ICMP_ECHO_T ? id : 0;
		l4->dport = l4->icmp_type == ICMP_ECHO_T ? 0 : id;
		return L4_PORTS;
	}
	l4->sport = *(__be16 *)&head[0];
	l4->dport = *(__be16 *)&head[2];
	if (l4->proto == IPPROTO_TCP)
		l4->tcp_flags = head[13];
	return L4_PORTS;
}

#endif /* SKIFF_BPF_L4_H */
