// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on a pod's host-side veth: everything a pod sends starts here.
 *
 *  - the source must be the pod's own IP (anti-spoofing), else drop;
 *  - service traffic is translated: replies from a backend back to the
 *    service's VIP:port, connections to a VIP:port to a backend (DNAT,
 *    conntrack); then the translated packet is forwarded like any other;
 *  - a destination pod on this node: MAC rewrite, TTL decrement and
 *    bpf_redirect_peer() straight into its namespace;
 *  - a destination in another node's PodCIDR: out of the uplink toward
 *    that node (native routing, source IP preserved);
 *  - anything else goes to the kernel stack.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/endpoints.h"
#include "lib/forward.h"
#include "lib/l4.h"
#include "lib/metrics.h"
#include "lib/service.h"

/* Returns a TC action and sets *reason, or a negative drop reason. */
static __always_inline int from_pod_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_endpoint_info *ep;
	struct skiff_node_info *node;
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

	ret = l4_load(skb, ip, &l4);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		__u32 svc_reason = 0;

		ret = svc_reverse(skb, ip, &l4, &svc_reason);
		if (ret == 0)
			ret = svc_forward(skb, ip, &l4, &svc_reason);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			metrics_count(svc_reason, SKIFF_DIR_EGRESS, skb->len);
			ip = ipv4_header(skb); /* the rewrite moved the packet */
			if (!ip)
				return -SKIFF_DROP_MALFORMED;
		}
	}

	ep = endpoint_lookup(ip->daddr);
	if (ep && (ep->flags & SKIFF_EP_F_LOCAL))
		return fwd_to_endpoint(skb, ip, ep, reason);

	node = node_lookup(ip->daddr);
	if (node && !(node->flags & SKIFF_NODE_F_LOCAL))
		return fwd_to_node(skb, ip, node, reason);

	*reason = SKIFF_FWD_STACK;
	return TC_ACT_OK;
}

SEC("tc")
int skiff_from_pod(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_REASON_UNSPEC;
	struct ethhdr *eth;
	int ret;

	eth = eth_header(skb);
	if (!eth) {
		ret = -SKIFF_DROP_MALFORMED;
	} else if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		reason = SKIFF_FWD_NON_IP;
		ret = TC_ACT_OK;
	} else {
		ret = from_pod_ipv4(skb, &reason);
	}

	if (ret < 0) {
		metrics_count(-ret, SKIFF_DIR_EGRESS, skb->len);
		return TC_ACT_SHOT;
	}
	metrics_count(reason, SKIFF_DIR_EGRESS, skb->len);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
