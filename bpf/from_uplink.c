// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on the node's uplink: traffic from other nodes. A reply from a
 * remote service backend is translated back to the service's VIP:port; a
 * packet for a pod on this node goes straight into it (bpf_redirect_peer);
 * everything else (the node's own traffic, malformed frames) is the kernel
 * stack's.
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

static __always_inline int from_uplink_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_endpoint_info *ep;
	struct l4_info l4;
	struct iphdr *ip;

	ip = ipv4_header(skb);
	if (!ip || !l2_to_host(skb)) {
		/* Not ours to judge: the node's stack drops what is broken
		 * and does not route what was not sent to it. */
		*reason = SKIFF_FWD_STACK;
		return TC_ACT_OK;
	}
	if (l4_load(skb, ip, &l4) == 0) {
		__u32 svc_reason = 0;
		int ret = svc_reverse(skb, ip, &l4, &svc_reason);

		if (ret < 0)
			return ret;
		if (ret == 1) {
			metrics_count(svc_reason, SKIFF_DIR_INGRESS, skb->len);
			ip = ipv4_header(skb); /* the rewrite moved the packet */
			if (!ip)
				return -SKIFF_DROP_MALFORMED;
		}
	}

	ep = endpoint_lookup(ip->daddr);
	if (ep && (ep->flags & SKIFF_EP_F_LOCAL))
		return fwd_to_endpoint(skb, ip, ep, reason);

	*reason = SKIFF_FWD_STACK;
	return TC_ACT_OK;
}

SEC("tc")
int skiff_uplink(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	struct ethhdr *eth;
	int ret = TC_ACT_OK;

	eth = eth_header(skb);
	if (eth && eth->h_proto == bpf_htons(ETH_P_IP))
		ret = from_uplink_ipv4(skb, &reason);

	if (ret < 0) {
		metrics_count(-ret, SKIFF_DIR_INGRESS, skb->len);
		return TC_ACT_SHOT;
	}
	metrics_count(reason, SKIFF_DIR_INGRESS, skb->len);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
