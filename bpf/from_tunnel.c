// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on the node's VXLAN device (overlay mode): what other nodes
 * sent through the tunnel, decapsulated by the device.
 *
 *  - the inner source must belong to the node the packet came from: its
 *    address, or an address in its PodCIDR (no spoofing across the
 *    tunnel), and the VNI must be the cluster's; else drop;
 *  - then it is handled like traffic arriving on the uplink
 *    (lib/node_ingress.h): a packet for a pod here goes straight into it
 *    (bpf_redirect_peer), a reply from a remote service backend is
 *    translated back first.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/node_ingress.h"
#include "lib/verdict.h"
#include "lib/tunnel.h"

static __always_inline int from_tunnel_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	ret = tunnel_check_source(skb, ip);
	if (ret < 0)
		return ret;
	return node_ingress_ipv4(skb, reason);
}

SEC("tc")
int skiff_from_tunnel(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	struct ethhdr *eth;
	int ret = TC_ACT_OK;

	trace_begin(skb);
	eth = eth_header(skb);
	if (!eth)
		ret = -SKIFF_DROP_MALFORMED;
	else if (eth->h_proto == bpf_htons(ETH_P_IP))
		ret = from_tunnel_ipv4(skb, &reason);

	return verdict(skb, ret, reason, SKIFF_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
