// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on the node's uplink: traffic from other nodes and from
 * outside the cluster, handled as lib/node_ingress.h says.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/node_ingress.h"
#include "lib/verdict.h"

SEC("tc")
int skiff_uplink(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	struct ethhdr *eth;
	int ret = TC_ACT_OK;

	trace_begin(skb);
	eth = eth_header(skb);
	if (eth && eth->h_proto == bpf_htons(ETH_P_IP))
		ret = node_ingress_ipv4(skb, &reason);

	return verdict(skb, ret, reason, SKIFF_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
