/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The service reply stage, the same from a pod (a local backend answering)
 * and from the uplink or tunnel (a remote backend answering): the packet
 * matched a connection's REPLY entry, so it goes back to the frontend (and
 * to the client, if its source was translated on the way in), then on.
 */
#ifndef SKIFF_BPF_SVC_REPLY_H
#define SKIFF_BPF_SVC_REPLY_H

#include "common.h"
#include "forward.h"
#include "ipv4.h"
#include "l4.h"
#include "service.h"
#include "verdict.h"

/*
 * Translated back, then forwarded: to a pod here or on another node (a
 * pod's connection to another node's NodePort), else routed by FIB: with
 * this node's address as its source, a NodePort reply would be dropped as
 * martian by the stack. Out of line: the packets that match no REPLY entry
 * never run or fetch this code. dir: the calling program's direction, for
 * the translation's counter.
 */
static __noinline int svc_reply_forward(struct __sk_buff *skb, struct l4_info *l4, struct skiff_ct_value *ct, __u32 dir,
					__u32 *reason)
{
	__u32 svc_reason = 0;
	struct iphdr *ip;
	int ret;

	ret = svc_reverse_xlate(skb, l4, ct, &svc_reason);
	if (ret < 0)
		return ret;
	count(skb, svc_reason, dir);
	ip = ipv4_header(skb); /* the rewrite moved the packet */
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	return fwd_ipv4(skb, ip, FWD_TO_NODES | FWD_BY_FIB, reason);
}

/* What fwd_reply_or_pod() returns for a packet that is neither. */
#define FWD_NEITHER 0x200

/*
 * The stage both ingress points share once a packet's ports are loaded: a
 * reply from a service backend goes back through its frontend, and a packet
 * for the pod network (here or on another node) goes straight there,
 * without the frontend and masquerade lookups: it needs neither. Returns a
 * TC action, a negative drop reason, or FWD_NEITHER. how: the flags for
 * dst_in_pod_network(). dir: the calling program's direction; a pod's own
 * flow (SKIFF_DIR_EGRESS) also clears a stale REPLY entry on its 4-tuple.
 */
static __always_inline int fwd_reply_or_pod(struct __sk_buff *skb, const struct skiff_config *cfg, struct iphdr *ip,
					    struct l4_info *l4, __u32 how, __u32 dir, __u32 *reason)
{
	struct skiff_endpoint_info *ep = NULL;
	struct skiff_node_info *node = NULL;
	struct skiff_ct_value *ct;
	int where;

	ct = svc_reply_lookup(ip, l4);
	if (unlikely(ct))
		return svc_reply_forward(skb, l4, ct, dir, reason);
	where = cluster_may_hold(cfg, ip->daddr) ? dst_in_pod_network(ip->daddr, how, &ep, &node) : 0;
	if (unlikely(!where))
		return FWD_NEITHER;
	if (dir == SKIFF_DIR_EGRESS)
		svc_purge_stale_reply(skb, ip, l4);
	return fwd_pod_network(skb, ip, where, ep, node, reason);
}

#endif /* SKIFF_BPF_SVC_REPLY_H */
