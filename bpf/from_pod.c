// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on a pod's host-side veth: everything a pod sends starts here.
 *
 *  - the source must be the pod's own IP (anti-spoofing), else drop;
 *  - service traffic is translated: replies from a backend back to the
 *    service's frontend, connections to a frontend to a backend (DNAT,
 *    conntrack), refused at once when the service has no backend;
 *  - traffic to a pod (this node's or a remote PodCIDR) inside the
 *    cluster's pod range is forwarded without the frontend and masquerade
 *    lookups: it is neither;
 *  - traffic leaving the cluster is masqueraded to the node's address,
 *    and so is service traffic DNATed to a backend outside the pod
 *    network (its replies are translated back on the uplink);
 *  - then the packet is forwarded: into a pod on this node
 *    (bpf_redirect_peer), out of the uplink toward the node owning a
 *    remote PodCIDR (native routing, source IP preserved), or to the
 *    kernel stack.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/endpoints.h"
#include "lib/forward.h"
#include "lib/l4.h"
#include "lib/metrics.h"
#include "lib/reject.h"
#include "lib/service.h"
#include "lib/snat.h"
#include "lib/svc_reply.h"
#include "lib/verdict.h"

/*
 * A connection to a service, DNATed to a backend outside the pod network,
 * is masqueraded like a flow sent straight to that address (a backend
 * without a route to pods, e.g. the API server on a node without skiff,
 * could not answer the pod's address). A pod backend, here or on another
 * node, keeps the pod's address: the caller has forwarded those already.
 * Loads the backend's port into l4: the flow is keyed by the translated
 * packet.
 */
static __always_inline int svc_backend_masqueraded(struct __sk_buff *skb, const struct skiff_config *cfg,
						   const struct iphdr *ip, struct l4_info *l4)
{
	if (l4->proto != IPPROTO_TCP && l4->proto != IPPROTO_UDP)
		return 0;
	if (!snat_applies(cfg, ip, l4))
		return 0;
	if (bpf_skb_load_bytes(skb, l4->off + 2, &l4->dport, sizeof(l4->dport)) < 0)
		return 0;
	return 1;
}

/*
 * The packet's path is laid out for the common case, traffic to a pod here
 * or on another node: the cold paths below (later fragments, service
 * replies, service frontends, masquerade) are BPF-to-BPF calls, so their
 * code is neither inlined between the instructions of that path nor
 * fetched for its packets.
 */

/* A later fragment: of a masqueraded datagram, its source too. */
static __noinline int from_pod_frag_tail(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_frag_value *frag;
	struct bpf_fib_lookup fib;
	struct iphdr *ip;
	long rc = 0;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	frag = snat_frag_lookup(ip);
	if (!frag)
		return fwd_ipv4(skb, ip, FWD_TO_NODES, reason);
	if (fib_check(skb, ip, ip->daddr, &fib, &rc, reason))
		return TC_ACT_OK;
	ret = snat_frag_rewrite(skb, ip, 0, frag->addr);
	if (ret < 0)
		return ret;
	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	return fib_send(skb, ip, &fib, rc, SKIFF_FWD_FIB, reason);
}

/*
 * Masquerade a flow leaving the cluster (or DNATed to a backend outside
 * the pod network) and route it out. Translate only what will be sent; the
 * stack answers for the rest (time exceeded, fragmentation needed) while
 * the source is the pod's. Later fragments of a service datagram still
 * name the frontend: none is remembered. Its own call, so its FIB and
 * fragment keys are not on the stack of the paths that do not masquerade.
 */
static __noinline int from_pod_masquerade(struct __sk_buff *skb, struct l4_info *l4, int first_frag, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	struct bpf_fib_lookup fib;
	struct skiff_frag_key fk;
	__u32 svc_reason = 0;
	struct iphdr *ip;
	long rc = 0;
	int ret;

	ip = ipv4_header(skb);
	if (!ip || !cfg)
		return -SKIFF_DROP_MALFORMED;
	if (fib_check(skb, ip, ip->daddr, &fib, &rc, reason))
		return TC_ACT_OK;
	frag_key_init(&fk, ip);
	ret = snat_egress(skb, ip, l4, cfg, &svc_reason);
	if (ret < 0)
		return ret;
	count(skb, svc_reason, SKIFF_DIR_EGRESS);
	ip = ipv4_header(skb); /* the rewrite moved the packet */
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	if (first_frag)
		snat_frag_remember(skb, &fk, ip->saddr);
	return fib_send(skb, ip, &fib, rc, SKIFF_FWD_FIB, reason);
}

/*
 * Neither a service reply nor to a pod: a service frontend, a flow leaving
 * the cluster, or the stack's. A TC action, a negative drop reason, or one
 * of these: masquerade the packet (from_pod_masquerade(), called by the
 * entry so that the two calls' stacks are never stacked on each other).
 */
#define FROM_POD_MASQ 0x100
#define FROM_POD_MASQ_FIRST_FRAG 0x101

static __noinline int from_pod_other(struct __sk_buff *skb, struct l4_info *l4, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	__u32 svc_reason = 0;
	int first_frag = 0;
	struct iphdr *ip;
	int masq = 0;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	ret = svc_forward(skb, ip, l4, &svc_reason, 0);
	if (ret < 0)
		return ret;
	if (ret == SVC_PASS)
		svc_purge_stale_reply_inline(skb, ip, l4);
	if (ret == SVC_REJECT)
		return reject_back(skb, l4->proto, 1, reason); /* back to the client */
	if (ret == SVC_TRANSLATED) {
		struct skiff_endpoint_info *ep = NULL;
		struct skiff_node_info *node = NULL;
		int where;

		count(skb, svc_reason, SKIFF_DIR_EGRESS);
		ip = ipv4_header(skb); /* the rewrite moved the packet */
		if (!ip)
			return -SKIFF_DROP_MALFORMED;
		/* A pod backend, here or on another node: forwarded by the
		 * one lookup that finds it, never masqueraded. */
		where = cluster_may_hold(cfg, ip->daddr) ? dst_in_pod_network(ip->daddr, FWD_TO_NODES, &ep, &node) : 0;
		if (where)
			return fwd_pod_network(skb, ip, where, ep, node, reason);
		masq = svc_backend_masqueraded(skb, cfg, ip, l4);
	} else if (snat_applies(cfg, ip, l4)) {
		masq = 1; /* leaving the cluster */
		first_frag = ipv4_more_fragments(ip);
	}
	if (masq)
		return first_frag ? FROM_POD_MASQ_FIRST_FRAG : FROM_POD_MASQ;
	return fwd_ipv4(skb, ip, FWD_TO_NODES, reason);
}

/* Returns a TC action and sets *reason, or a negative drop reason. */
static __always_inline int from_pod_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct l4_info l4;
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;

	ret = endpoint_check_source(ip->saddr, skb->ifindex);
	if (ret < 0)
		return ret;
	if (!l2_to_host(skb)) {
		*reason = SKIFF_FWD_STACK;
		return TC_ACT_OK;
	}
	if (unlikely(ipv4_is_fragment_tail(ip)))
		return from_pod_frag_tail(skb, reason);
	if (l4_load(skb, ip, &l4) != L4_PORTS)
		return fwd_ipv4(skb, ip, FWD_TO_NODES, reason);

	/* A service reply, or to a pod here or on another node: no frontend,
	 * no masquerade, so no lookup for either. */
	ret = fwd_reply_or_pod(skb, config_get(), ip, &l4, FWD_TO_NODES, SKIFF_DIR_EGRESS, reason);
	if (likely(ret != FWD_NEITHER))
		return ret;
	ret = from_pod_other(skb, &l4, reason);
	if (ret >= FROM_POD_MASQ)
		return from_pod_masquerade(skb, &l4, ret == FROM_POD_MASQ_FIRST_FRAG, reason);
	return ret;
}

SEC("tc")
int skiff_from_pod(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_REASON_UNSPEC;
	int ret;

	trace_begin(skb);
	ret = eth_is_ipv4(skb);
	if (ret > 0) {
		ret = from_pod_ipv4(skb, &reason);
	} else if (!ret) {
		reason = SKIFF_FWD_NON_IP;
		ret = TC_ACT_OK;
	}

	return verdict(skb, ret, reason, SKIFF_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
