/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What arrives at the node from other nodes and from outside the cluster,
 * on the uplink (from_uplink.c) or out of the tunnel (from_tunnel.c):
 *
 *  - a reply from a remote service backend is translated back to the
 *    service's frontend (and, for NodePort, to the outside client);
 *  - a reply to a masqueraded pod flow, or an ICMP error about one, is
 *    translated back to the pod, and when the flow went to a service
 *    backend outside the pod network, back to the service's frontend too;
 *  - a connection to a frontend (a NodePort on this node's address, or a
 *    ClusterIP) is DNATed to a backend; remote backends also get this
 *    node's address as source so their replies come back here;
 *  - a packet for a pod on this node goes straight into it; inside the
 *    cluster's pod range it is looked up right after the service reply
 *    check (a pod's address is neither a frontend nor masqueraded), else
 *    after the frontend and masquerade lookups;
 *  - an encapsulated packet for this node's tunnel port goes to the
 *    kernel's VXLAN socket first thing (from_tunnel sees what it holds);
 *  - everything else (the node's own traffic, malformed frames) is the
 *    kernel stack's.
 */
#ifndef SKIFF_BPF_NODE_INGRESS_H
#define SKIFF_BPF_NODE_INGRESS_H

#include "common.h"
#include "maps.h"
#include "eth.h"
#include "ipv4.h"
#include "endpoints.h"
#include "forward.h"
#include "l4.h"
#include "metrics.h"
#include "reject.h"
#include "service.h"
#include "snat.h"
#include "svc_reply.h"
#include "tunnel.h"
#include "verdict.h"

/*
 * A reply to a masqueraded flow, its destination just translated back to
 * the pod: when the pod sent the flow to a service frontend (from_pod
 * DNATed it to a backend outside the pod network, then masqueraded it),
 * the source goes back to the frontend too. Returns like svc_reverse().
 */
static __always_inline int svc_reverse_masqueraded(struct __sk_buff *skb, struct iphdr *ip, struct l4_info *l4,
						   __u32 *reason)
{
	if (l4->proto != IPPROTO_TCP && l4->proto != IPPROTO_UDP)
		return SVC_PASS;
	/* The pod's port, as snat_ingress() wrote it. */
	if (bpf_skb_load_bytes(skb, l4->off + 2, &l4->dport, sizeof(l4->dport)) < 0)
		return SVC_PASS;
	return svc_reverse(skb, ip, l4, reason);
}

/*
 * The packet's path is laid out for the common case, a packet for a pod on
 * this node: the cold paths below (later fragments, ICMP errors, service
 * replies, masquerade replies, service frontends) are BPF-to-BPF calls, so
 * their code is neither inlined between the instructions of that path nor
 * fetched for its packets.
 */

/* A later fragment of a reply to a masqueraded flow. */
static __noinline int node_ingress_frag_tail(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_frag_value *frag;
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	frag = snat_frag_lookup(ip);
	if (frag) {
		ret = snat_frag_rewrite(skb, ip, 1, frag->addr);
		if (ret < 0)
			return ret;
		ip = ipv4_header(skb);
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
	}
	return fwd_ipv4(skb, ip, 0, reason);
}

/* An ICMP error: about a masqueraded flow, translated back. */
static __noinline int node_ingress_icmp_error(struct __sk_buff *skb, struct l4_info *l4, __u32 *reason)
{
	__u32 nat_reason = 0;
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	ret = snat_icmp_error(skb, ip, l4, &nat_reason);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		count(skb, nat_reason, SKIFF_DIR_INGRESS);
		ip = ipv4_header(skb);
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
		/* About a pod's connection to a service frontend, DNATed
		 * to a backend outside the pod network: the quote goes
		 * back to the frontend too. */
		ret = svc_icmp_error_reverse(skb, ip, l4, &nat_reason);
		if (ret < 0)
			return ret;
		if (ret == SVC_TRANSLATED) {
			count(skb, nat_reason, SKIFF_DIR_INGRESS);
			ip = ipv4_header(skb);
			if (!ip)
				return -SKIFF_DROP_MALFORMED;
		}
	}
	return fwd_ipv4(skb, ip, 0, reason);
}

/* Neither a service reply nor for a pod: a reply to a masqueraded flow, a
 * connection to a frontend, or the node's own traffic. */
static __noinline int node_ingress_other(struct __sk_buff *skb, struct l4_info *l4, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	struct skiff_frag_key fk;
	__u32 svc_reason = 0;
	struct iphdr *ip;
	int first_frag;
	__u32 how = 0;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	first_frag = ipv4_more_fragments(ip);
	frag_key_init(&fk, ip);
	ret = snat_ingress(skb, ip, l4, &svc_reason);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		count(skb, svc_reason, SKIFF_DIR_INGRESS);
		ip = ipv4_header(skb);
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
		if (first_frag)
			snat_frag_remember(skb, &fk, ip->daddr);
		ret = svc_reverse_masqueraded(skb, ip, l4, &svc_reason);
		if (ret < 0)
			return ret;
		if (ret == SVC_TRANSLATED) {
			count(skb, svc_reason, SKIFF_DIR_INGRESS);
			ip = ipv4_header(skb);
			if (!ip)
				return -SKIFF_DROP_MALFORMED;
		}
		return fwd_ipv4(skb, ip, 0, reason);
	}
	ret = svc_forward(skb, ip, l4, &svc_reason, cfg ? cfg->node_ip : 0);
	if (ret < 0)
		return ret;
	if (ret == SVC_REJECT)
		return reject_back(skb, l4->proto, 0, reason); /* back out where it came from */
	if (ret == SVC_TRANSLATED) {
		count(skb, svc_reason, SKIFF_DIR_INGRESS);
		/* Remote backends go to their node; a backend outside every
		 * PodCIDR is routed by FIB (see svc_reply_forward()). */
		how = FWD_TO_NODES | FWD_BY_FIB;
		ip = ipv4_header(skb); /* the rewrite moved the packet */
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
	}
	return fwd_ipv4(skb, ip, how, reason);
}

/* Returns a TC action and sets *reason, or a negative drop reason. */
static __always_inline int node_ingress_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	struct l4_info l4;
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip || !l2_to_host(skb)) {
		/* Not ours to judge: the node's stack drops what is broken
		 * and does not route what was not sent to it. */
		*reason = SKIFF_FWD_STACK;
		return TC_ACT_OK;
	}
	if (unlikely(ipv4_is_fragment_tail(ip)))
		return node_ingress_frag_tail(skb, reason);

	ret = l4_load(skb, ip, &l4);
	if (unlikely(ret == L4_ICMP_ERROR))
		return node_ingress_icmp_error(skb, &l4, reason);
	if (ret != L4_PORTS)
		return fwd_ipv4(skb, ip, 0, reason);
	if (tunnel_inbound(cfg, ip, &l4)) {
		*reason = SKIFF_FWD_FROM_TUNNEL;
		return TC_ACT_OK;
	}

	/* A pod's address is neither a frontend nor a masqueraded reply
	 * (those come to the node's). */
	ret = fwd_reply_or_pod(skb, cfg, ip, &l4, 0, SKIFF_DIR_INGRESS, reason);
	if (likely(ret != FWD_NEITHER))
		return ret;
	return node_ingress_other(skb, &l4, reason);
}

/*
 * A frame on either entry point. From the tunnel, a frame too short for an
 * Ethernet header is dropped, and the inner source must belong to the node
 * the packet came from; the uplink leaves runts to the stack.
 */
static __always_inline int node_ingress_frame(struct __sk_buff *skb, const int from_tunnel, __u32 *reason)
{
	struct iphdr *ip;
	int ret;

	ret = eth_is_ipv4(skb);
	if (ret <= 0) /* 0, another protocol: TC_ACT_OK, the stack's */
		return from_tunnel ? ret : TC_ACT_OK;
	if (from_tunnel) {
		ip = ipv4_header(skb);
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
		ret = tunnel_check_source(skb, ip);
		if (ret < 0)
			return ret;
	}
	return node_ingress_ipv4(skb, reason);
}

/* The body of both entry points (from_uplink.c, from_tunnel.c). */
static __always_inline int node_ingress(struct __sk_buff *skb, const int from_tunnel)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	int ret;

	trace_begin(skb);
	ret = node_ingress_frame(skb, from_tunnel, &reason);
	return verdict(skb, ret, reason, SKIFF_DIR_INGRESS);
}

#endif /* SKIFF_BPF_NODE_INGRESS_H */
