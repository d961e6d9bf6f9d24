// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC egress on the node's uplink: what leaves the node.
 *
 *  - packets skiff itself redirected here (pod traffic, translated
 *    replies) carry SKIFF_FORWARDED_MARK: the mark is cleared and they
 *    pass, counted already where they were judged;
 *  - the node's own flows to destinations that pods are masqueraded to
 *    are entered in the masquerade table, keeping their port: pod flows
 *    then never take a tuple the node uses, and a new node flow whose
 *    tuple a pod flow already holds leaves from another port (its replies
 *    are moved back by from_uplink); the tunnel's outer packets are not
 *    such flows (a source port per inner flow, nothing answers them);
 *  - everything else passes uncounted.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/l4.h"
#include "lib/metrics.h"
#include "lib/snat.h"
#include "lib/tunnel.h"
#include "lib/verdict.h"

/* Returns a TC action (reason 0: not counted) or a negative drop reason. */
static __always_inline int to_uplink_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	struct iphdr *ip = ipv4_header(skb);
	struct l4_info l4;
	int ret;

	/* Only the node's own address is masqueraded here. */
	if (!ip || !cfg || !cfg->node_ip || ip->saddr != cfg->node_ip)
		return TC_ACT_OK;
	if (l4_load(skb, ip, &l4) != L4_PORTS || tunnel_outbound(cfg, &l4) || !snat_applies(cfg, ip, &l4))
		return TC_ACT_OK;
	ret = snat_node_egress(skb, ip, &l4, cfg, reason);
	return ret < 0 ? ret : TC_ACT_OK;
}

SEC("tc")
int skiff_to_uplink(struct __sk_buff *skb)
{
	__u32 reason = 0;
	int ret = TC_ACT_OK;

	if (skb->mark == SKIFF_FORWARDED_MARK) {
		skb->mark = 0;
		return TC_ACT_OK;
	}
	trace_begin(skb);
	if (eth_is_ipv4(skb) > 0)
		ret = to_uplink_ipv4(skb, &reason);
	if (ret >= 0 && !reason && !trace_mode(skb))
		return ret;
	return verdict(skb, ret, reason ? reason : SKIFF_FWD_STACK, SKIFF_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
