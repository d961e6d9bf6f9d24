/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Overlay: reaching another node's pods through the node's flow-based VXLAN
 * device. The programs give the packet its tunnel key (the remote node's
 * address, the VNI) and redirect it into the device, which adds the outer
 * headers and routes them on the underlay; no per-peer device, FDB or
 * neighbour entry is involved. On the way in, a packet is accepted only
 * from the node whose PodCIDR holds its inner source.
 */
#ifndef SKIFF_BPF_TUNNEL_H
#define SKIFF_BPF_TUNNEL_H

#include "common.h"
#include "eth.h"
#include "ipv4.h"
#include "endpoints.h"
#include "l4.h"
#include "maps.h"
#include "reject.h"
#include "redirect.h"

/*
 * Outer packets up to this size are sent without DF: every IPv4 underlay
 * worth the name carries them, and the rare one that does not fragments
 * them rather than dropping. Larger ones are checked against the path MTU
 * toward the remote node first.
 */
#define TUNNEL_SMALL 1280
#define TUNNEL_TTL 64
#define IPV4_DF 0x4000

/* A MAC written byte by byte as immediates: an array, even a local one,
 * would be copied from .rodata, a map of its own that is not pinned. */
static __always_inline void mac_store(__u8 *m, __u8 b0, __u8 b1, __u8 b2, __u8 b3, __u8 b4, __u8 b5)
{
	m[0] = b0;
	m[1] = b1;
	m[2] = b2;
	m[3] = b3;
	m[4] = b4;
	m[5] = b5;
}

/* The tunnel's inner MACs (maps/skiff_maps.h). */
static __always_inline void tunnel_set_macs(struct ethhdr *eth, int dst_too)
{
	mac_store(eth->h_source, SKIFF_TUNNEL_SRC_MAC_BYTES);
	if (dst_too)
		mac_store(eth->h_dest, SKIFF_TUNNEL_MAC_BYTES);
}

static __always_inline struct skiff_node_info *node_lookup(__be32 ip)
{
	struct skiff_node_key key = { .prefixlen = 32, .ip = ip };

	return bpf_map_lookup_elem(&skiff_nodes, &key);
}

/* The size of the outer packets the tunnel will send for this one: for a
 * GSO packet, its segments'. 0 when the headers cannot be read. */
static __always_inline __u32 tunnel_wire_len(struct __sk_buff *skb, const struct iphdr *ip)
{
	__u32 hlen = (__u32)ip->ihl * 4;
	__u8 doff;

	if (!skb->gso_size)
		return bpf_ntohs(ip->tot_len) + SKIFF_VXLAN_OVERHEAD;
	if (ip->protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + hlen + 12, &doff, 1) < 0)
			return 0;
		hlen += (__u32)(doff >> 4) * 4;
	} else {
		hlen += 8; /* UDP GSO */
	}
	return skb->gso_size + hlen + SKIFF_VXLAN_OVERHEAD;
}

/* Whether an outer packet of wire bytes toward node_ip exceeds the path
 * MTU the FIB knows (PMTU exceptions included): 1 with *mtu set, else 0. */
static __noinline int tunnel_too_big(struct __sk_buff *skb, __be32 node_ip, __u32 wire, __u32 *mtu)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.ipv4_dst = node_ip;
	fib.tot_len = wire;
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return 0;
	*mtu = fib.mtu_result;
	return 1;
}

/*
 * A packet too big for the tunnel's path: a pod on this node that sent it
 * with DF gets "fragmentation needed" with the inner MTU that fits (RFC
 * 1191), from this node's address, straight back into its namespace. 1:
 * answered; 0: the caller sends it anyway, without DF on the outer header
 * (the underlay fragments it).
 */
static __noinline int tunnel_frag_needed(struct __sk_buff *skb, const struct skiff_config *cfg, __u32 mtu,
					 __u32 *reason)
{
	struct skiff_endpoint_info *ep;
	struct iphdr *ip;

	ip = ipv4_header(skb);
	if (!ip || !(ip->frag_off & bpf_htons(IPV4_DF)) || ip->ihl != 5 || mtu <= SKIFF_VXLAN_OVERHEAD)
		return 0;
	ep = endpoint_lookup(ip->saddr);
	if (!ep || !(ep->flags & SKIFF_EP_F_LOCAL) || ep->ifindex != skb->ifindex)
		return 0;
	if (icmp_unreach_reply(skb, REJECT_ICMP_FRAG_NEEDED, mtu - SKIFF_VXLAN_OVERHEAD, cfg->node_ip) < 0)
		return 0;
	*reason = SKIFF_FWD_FRAG_NEEDED;
	return 1;
}

/* Give the packet its tunnel key toward node_ip. */
static __always_inline int tunnel_set_key(struct __sk_buff *skb, const struct skiff_config *cfg, __be32 node_ip,
					  __u64 flags)
{
	struct bpf_tunnel_key key = {};

	key.remote_ipv4 = bpf_ntohl(node_ip);
	key.tunnel_id = cfg->tunnel_vni;
	key.tunnel_ttl = TUNNEL_TTL;
	trace_note_tunnel(skb, node_ip, cfg->tunnel_vni);
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags | BPF_F_ZERO_CSUM_TX) < 0)
		return -SKIFF_DROP_REDIRECT_FAILED;
	return 0;
}

/*
 * Routed hop into the tunnel toward the node owning the destination's
 * PodCIDR: TTL-1, inner MACs set to the tunnel's (SKIFF_TUNNEL_*MAC),
 * tunnel key, redirect into this node's tunnel device. The outer header
 * carries DF when the inner one does and the path was checked.
 */
static __always_inline int fwd_encap(struct __sk_buff *skb, struct iphdr *ip, const struct skiff_node_info *node,
				     __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	__be32 node_ip = node->node_ip;
	struct ethhdr *eth;
	__u64 flags = 0;
	__u32 wire, mtu = 0;
	long ret;

	if (!cfg || !cfg->tunnel_ifindex)
		return -SKIFF_DROP_NO_TUNNEL;
	if (ip->ttl <= 1) {
		*reason = SKIFF_FWD_TTL_EXPIRED;
		return TC_ACT_OK;
	}
	wire = tunnel_wire_len(skb, ip);
	if (unlikely(wire > TUNNEL_SMALL)) {
		if (tunnel_too_big(skb, node_ip, wire, &mtu)) {
			if (tunnel_frag_needed(skb, cfg, mtu, reason))
				return skiff_redirect_peer(skb, skb->ifindex) == TC_ACT_REDIRECT
					       ? TC_ACT_REDIRECT
					       : -SKIFF_DROP_REDIRECT_FAILED;
		} else if (ip->frag_off & bpf_htons(IPV4_DF)) {
			flags = BPF_F_DONT_FRAGMENT;
		}
		ip = ipv4_header(skb); /* revalidated after the calls */
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
	}
	ipv4_dec_ttl(ip);
	eth = eth_header(skb);
	if (!eth)
		return -SKIFF_DROP_MALFORMED;
	tunnel_set_macs(eth, 1);
	ret = tunnel_set_key(skb, cfg, node_ip, flags);
	if (ret < 0)
		return ret;
	*reason = SKIFF_FWD_TUNNEL;
	ret = skiff_redirect(skb, cfg->tunnel_ifindex);
	if (!trace_mode(skb))
		skb->mark = SKIFF_TUNNEL_MARK; /* keyed already */
	return ret == TC_ACT_REDIRECT ? ret : -SKIFF_DROP_REDIRECT_FAILED;
}

/*
 * An encapsulated packet for this node's tunnel socket, as it arrives on
 * the uplink: the kernel's VXLAN device decapsulates it and from_tunnel
 * judges what was inside, so the uplink's lookups have nothing to find.
 */
static __always_inline int tunnel_inbound(const struct skiff_config *cfg, const struct iphdr *ip,
					  const struct l4_info *l4)
{
	return cfg && cfg->tunnel_port && l4->proto == IPPROTO_UDP && l4->dport == cfg->tunnel_port &&
	       ip->daddr == cfg->node_ip;
}

/* The node's own outer packet, on its way to another node's tunnel port
 * (the caller checked the source is the node's address). */
static __always_inline int tunnel_outbound(const struct skiff_config *cfg, const struct l4_info *l4)
{
	return cfg->tunnel_port && l4->proto == IPPROTO_UDP && l4->dport == cfg->tunnel_port;
}

/*
 * A packet that came out of the tunnel: accepted when the outer source is
 * the node whose PodCIDR holds the inner source (or is that source: the
 * node's own traffic) and the VNI is this cluster's. 0 or a negative drop
 * reason.
 */
static __always_inline int tunnel_check_source(struct __sk_buff *skb, const struct iphdr *ip)
{
	struct skiff_config *cfg = config_get();
	struct bpf_tunnel_key key = {};
	struct skiff_node_info *node;
	__be32 outer;

	if (!cfg || bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return -SKIFF_DROP_TUNNEL_SPOOF;
	if (key.tunnel_id != cfg->tunnel_vni)
		return -SKIFF_DROP_TUNNEL_SPOOF;
	outer = bpf_htonl(key.remote_ipv4);
	if (ip->saddr == outer)
		return 0;
	node = node_lookup(ip->saddr);
	if (!node || (node->flags & SKIFF_NODE_F_LOCAL) || node->node_ip != outer)
		return -SKIFF_DROP_TUNNEL_SPOOF;
	return 0;
}

#endif /* SKIFF_BPF_TUNNEL_H */
