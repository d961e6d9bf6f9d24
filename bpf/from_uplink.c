// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on the node's uplink: traffic from other nodes and from
 * outside the cluster.
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
 *  - everything else (the node's own traffic, malformed frames) is the
 *    kernel stack's.
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
#include "lib/trace.h"

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

static __always_inline int from_uplink_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_config *cfg = NULL;
	struct l4_info l4;
	struct iphdr *ip;
	__u32 how = 0;
	int ret;

	ip = ipv4_header(skb);
	if (!ip || !l2_to_host(skb)) {
		/* Not ours to judge: the node's stack drops what is broken
		 * and does not route what was not sent to it. */
		*reason = SKIFF_FWD_STACK;
		return TC_ACT_OK;
	}

	if (ipv4_is_fragment_tail(ip)) {
		/* A later fragment of a reply to a masqueraded flow. */
		struct skiff_frag_value *frag = snat_frag_lookup(ip);

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

	ret = l4_load(skb, ip, &l4);
	if (ret == L4_ICMP_ERROR) {
		__u32 nat_reason = 0;

		ret = snat_icmp_error(skb, ip, &l4, &nat_reason);
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
			ret = svc_icmp_error_reverse(skb, ip, &l4, &nat_reason);
			if (ret < 0)
				return ret;
			if (ret == SVC_TRANSLATED) {
				count(skb, nat_reason, SKIFF_DIR_INGRESS);
				ip = ipv4_header(skb);
				if (!ip)
					return -SKIFF_DROP_MALFORMED;
			}
		}
	} else if (ret == L4_PORTS) {
		__u32 svc_reason = 0;

		ret = svc_reverse(skb, ip, &l4, &svc_reason);
		if (ret == SVC_PASS) {
			struct skiff_endpoint_info *ep = NULL;
			struct skiff_node_info *node = NULL;
			struct skiff_frag_key fk;
			int first_frag = ipv4_more_fragments(ip);
			int where;

			/* A pod's address is neither a frontend nor a
			 * masqueraded reply (those come to the node's). */
			cfg = config_get();
			where = cluster_may_hold(cfg, ip->daddr) ? dst_in_pod_network(ip->daddr, 0, &ep, &node) : 0;
			if (where)
				return fwd_pod_network(skb, ip, where, ep, node, reason);
			frag_key_init(&fk, ip);
			ret = snat_ingress(skb, ip, &l4, &svc_reason);
			if (ret < 0)
				return ret;
			if (ret == 1) {
				count(skb, svc_reason, SKIFF_DIR_INGRESS);
				ip = ipv4_header(skb);
				if (!ip)
					return -SKIFF_DROP_MALFORMED;
				if (first_frag)
					snat_frag_remember(skb, &fk, ip->daddr);
				ret = svc_reverse_masqueraded(skb, ip, &l4, &svc_reason);
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
			ret = svc_forward(skb, ip, &l4, &svc_reason, cfg ? cfg->node_ip : 0);
		}
		if (ret < 0)
			return ret;
		if (ret == SVC_REJECT)
			return reject_back(skb, l4.proto, 0, reason); /* back out the uplink */
		if (ret == SVC_TRANSLATED) {
			count(skb, svc_reason, SKIFF_DIR_INGRESS);
			/* A backend outside every PodCIDR (a host-network pod) is
			 * routed by FIB: with this node's address as source the
			 * stack would drop it as martian. */
			how = svc_reason == SKIFF_SVC_REPLY ? FWD_BY_FIB : FWD_TO_NODES | FWD_BY_FIB;
			ip = ipv4_header(skb); /* the rewrite moved the packet */
			if (!ip)
				return -SKIFF_DROP_MALFORMED;
		}
	}
	return fwd_ipv4(skb, ip, how, reason);
}

SEC("tc")
int skiff_uplink(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	struct ethhdr *eth;
	int ret = TC_ACT_OK;

	trace_begin(skb);
	eth = eth_header(skb);
	if (eth && eth->h_proto == bpf_htons(ETH_P_IP))
		ret = from_uplink_ipv4(skb, &reason);

	return verdict(skb, ret, reason, SKIFF_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
