/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding decisions shared by the entry programs: into a local pod, or
 * out toward the node that owns a remote PodCIDR. Each returns a TC action
 * and sets *reason, or returns a negative drop reason.
 */
#ifndef SKIFF_BPF_FORWARD_H
#define SKIFF_BPF_FORWARD_H

#include "common.h"
#include "eth.h"
#include "ipv4.h"
#include "endpoints.h"
#include "maps.h"
#include "nexthop.h"
#include "redirect.h"
#include "tunnel.h"

/*
 * A routed hop's header changes: TTL-1 and the MACs. 0 when made, 1 when
 * the TTL expires here (*reason set; the stack answers with ICMP), or a
 * negative drop reason.
 */
static __always_inline int routed_hop(struct __sk_buff *skb, struct iphdr *ip, const __u8 *smac, const __u8 *dmac,
				      __u32 *reason)
{
	struct ethhdr *eth;

	if (ip->ttl <= 1) {
		*reason = SKIFF_FWD_TTL_EXPIRED;
		return 1;
	}
	ipv4_dec_ttl(ip);
	eth = eth_header(skb);
	if (!eth)
		return -SKIFF_DROP_MALFORMED;
	eth_set_macs(eth, smac, dmac);
	return 0;
}

/* Routed hop into a pod on this node: TTL-1, MACs, straight into its netns. */
static __always_inline int fwd_to_endpoint(struct __sk_buff *skb, struct iphdr *ip,
					   const struct skiff_endpoint_info *ep, __u32 *reason)
{
	int ret = routed_hop(skb, ip, ep->host_mac, ep->pod_mac, reason);

	if (ret)
		return ret > 0 ? TC_ACT_OK : ret;
	*reason = SKIFF_FWD_LOCAL_POD;
	ret = skiff_redirect_peer(skb, ep->ifindex);
	if (ret != TC_ACT_REDIRECT)
		return -SKIFF_DROP_REDIRECT_FAILED;
	return ret;
}

/*
 * Only frames addressed to this host at L2 are routed (RFC 1812; the
 * kernel's ip_forward() agrees): not broadcast, multicast or frames for
 * another MAC seen in promiscuous mode.
 */
static __always_inline int l2_to_host(const struct __sk_buff *skb)
{
	return skb->pkt_type == PACKET_HOST;
}

/*
 * The FIB's answer for sending the packet toward nexthop_dst: 0 with *fib
 * filled and *rc the lookup result when it can be sent, or 1 with *reason
 * set when the stack must handle it (TTL expiring here, no route, too big
 * for the path: the stack answers with ICMP).
 */
static __always_inline int fib_check(struct __sk_buff *skb, struct iphdr *ip, __be32 nexthop_dst,
				     struct bpf_fib_lookup *fib, long *rc, __u32 *reason)
{
	if (ip->ttl <= 1) {
		*reason = SKIFF_FWD_TTL_EXPIRED;
		return 1;
	}
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->ipv4_src = ip->saddr;
	fib->ipv4_dst = nexthop_dst;
	/*
	 * With tot_len set the lookup checks it against the route MTU, which
	 * a GSO super-packet always exceeds; 0 lets the kernel apply its own
	 * GSO-aware size check instead.
	 */
	fib->tot_len = skb->gso_size ? 0 : bpf_ntohs(ip->tot_len);
	fib->ifindex = skb->ifindex;

	*rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	if (*rc != BPF_FIB_LKUP_RET_SUCCESS && *rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		*reason = SKIFF_FWD_FIB_MISS;
		return 1;
	}
	return 0;
}

/* Send by a fib_check() answer: TTL-1, MACs, redirect. ip must be valid. */
static __always_inline int fib_send(struct __sk_buff *skb, struct iphdr *ip, struct bpf_fib_lookup *fib, long rc,
				    __u32 ok_reason, __u32 *reason)
{
	struct ethhdr *eth;

	ipv4_dec_ttl(ip);
	*reason = ok_reason;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = {
			.nh_family = AF_INET,
			.ipv4_nh = fib->ipv4_dst,
		};

		return skiff_redirect_neigh(skb, fib->ifindex, &nh);
	}
	eth = eth_header(skb);
	if (!eth)
		return -SKIFF_DROP_MALFORMED;
	eth_set_macs(eth, fib->smac, fib->dmac);
	return skiff_redirect(skb, fib->ifindex);
}

/*
 * Route the packet out toward nexthop_dst using the FIB: the egress device
 * and next hop come from the lookup, MACs from its result or, when the
 * neighbour is not resolved yet, from bpf_redirect_neigh(). Addresses are
 * not touched. ok_reason is reported when the packet is sent.
 */
static __always_inline int fwd_fib(struct __sk_buff *skb, struct iphdr *ip, __be32 nexthop_dst, __u32 ok_reason,
				   __u32 *reason)
{
	struct bpf_fib_lookup fib;
	long rc = 0;

	if (fib_check(skb, ip, nexthop_dst, &fib, &rc, reason))
		return TC_ACT_OK;
	/* The lookup touched no packet data: ip is still valid. */
	return fib_send(skb, ip, &fib, rc, ok_reason, reason);
}

/*
 * By native routing to node_ip, asking the FIB: its resolved answer is
 * cached for the packets after (now: the time the cache was read at). Out
 * of line: a flow's packets after its first take the cached answer and
 * never run this.
 */
static __noinline int fwd_node_fib(struct __sk_buff *skb, __be32 node_ip, __u64 now, __u32 *reason)
{
	struct bpf_fib_lookup fib;
	struct iphdr *ip;
	long rc = 0;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	if (fib_check(skb, ip, node_ip, &fib, &rc, reason))
		return TC_ACT_OK;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && !trace_mode(skb))
		nexthop_store(ip->saddr, node_ip, &fib, now);
	return fib_send(skb, ip, &fib, rc, SKIFF_FWD_REMOTE_NODE, reason);
}

/* By a cached FIB answer (nexthop_holds()): what fib_send() does. */
static __always_inline int fwd_nexthop(struct __sk_buff *skb, struct iphdr *ip, const struct skiff_nexthop *nh,
				       __u32 *reason)
{
	int ret = routed_hop(skb, ip, nh->smac, nh->dmac, reason);

	if (ret)
		return ret > 0 ? TC_ACT_OK : ret;
	*reason = SKIFF_FWD_REMOTE_NODE;
	return skiff_redirect(skb, nh->ifindex);
}

/* To the node owning the destination's PodCIDR, through the tunnel or by
 * native routing as the node map says; the source IP is never touched. */
static __always_inline int fwd_to_node(struct __sk_buff *skb, struct iphdr *ip, const struct skiff_node_info *node,
				       __u32 *reason)
{
	struct skiff_nexthop *nh;
	__u64 now = 0;

	if (node->flags & SKIFF_NODE_F_ENCAP)
		return fwd_encap(skb, ip, node, reason);
	if (!trace_mode(skb)) {
		nh = nexthop_lookup(ip->saddr, node->node_ip);
		now = bpf_ktime_get_coarse_ns();
		if (nh && nexthop_holds(skb, ip, nh, now))
			return fwd_nexthop(skb, ip, nh, reason);
	}
	return fwd_node_fib(skb, node->node_ip, now, reason);
}

#define FWD_TO_NODES 1u /* route remote PodCIDRs to their nodes */
#define FWD_BY_FIB 2u	/* anything else: route by FIB, not the stack */

/*
 * Where the destination sits in the pod network: a pod on this node (*ep
 * set), another node's PodCIDR (*node set, only with FWD_TO_NODES), or
 * neither (0). Such an address is never a service frontend nor a
 * masqueraded reply, so the entry programs forward it before those lookups
 * when it lies in the cluster's pod range (cluster_may_hold()).
 */
#define DST_LOCAL_POD 1
#define DST_REMOTE_POD 2

static __always_inline int dst_in_pod_network(__be32 daddr, __u32 how, struct skiff_endpoint_info **ep,
					      struct skiff_node_info **node)
{
	*ep = endpoint_lookup(daddr);
	if (*ep && ((*ep)->flags & SKIFF_EP_F_LOCAL))
		return DST_LOCAL_POD;
	if (how & FWD_TO_NODES) {
		*node = node_lookup(daddr);
		if (*node && !((*node)->flags & SKIFF_NODE_F_LOCAL))
			return DST_REMOTE_POD;
	}
	return 0;
}

/* Whether daddr may be a pod's: inside the cluster's pod range, or the
 * range is not configured. Outside it, the pod lookups would only miss. */
static __always_inline int cluster_may_hold(const struct skiff_config *cfg, __be32 daddr)
{
	return !cfg || (daddr & cfg->cluster_mask) == cfg->cluster_net;
}

/* Forward by a dst_in_pod_network() answer other than 0. */
static __always_inline int fwd_pod_network(struct __sk_buff *skb, struct iphdr *ip, int where,
					   const struct skiff_endpoint_info *ep, const struct skiff_node_info *node,
					   __u32 *reason)
{
	if (where == DST_LOCAL_POD)
		return fwd_to_endpoint(skb, ip, ep, reason);
	return fwd_to_node(skb, ip, node, reason);
}

/*
 * Forward by destination: into a local pod, to the node owning a remote
 * PodCIDR (FWD_TO_NODES), by FIB lookup (FWD_BY_FIB: translated packets
 * whose source may now be this node's own address, which the stack would
 * drop as martian), or to the stack.
 */
static __always_inline int fwd_ipv4(struct __sk_buff *skb, struct iphdr *ip, __u32 how, __u32 *reason)
{
	struct skiff_endpoint_info *ep = NULL;
	struct skiff_node_info *node = NULL;
	int where = dst_in_pod_network(ip->daddr, how, &ep, &node);

	if (where)
		return fwd_pod_network(skb, ip, where, ep, node, reason);
	if (how & FWD_BY_FIB)
		return fwd_fib(skb, ip, ip->daddr, SKIFF_FWD_FIB, reason);
	*reason = SKIFF_FWD_STACK;
	return TC_ACT_OK;
}

#endif /* SKIFF_BPF_FORWARD_H */
