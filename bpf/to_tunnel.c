// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC egress on the node's VXLAN device (overlay mode).
 *
 *  - packets skiff's programs encapsulated carry their tunnel key and
 *    SKIFF_TUNNEL_MARK: the mark is cleared and they pass. The device
 *    sends the outer packet through the node's netfilter (OUTPUT,
 *    POSTROUTING), where no skiff mark may arrive: kubelet's KUBE-FIREWALL
 *    drops packets with bit 0x8000, its KUBE-POSTROUTING masquerades those
 *    with 0x4000;
 *  - anything else routed into the device (the node's own packets, by the
 *    agent's route for a remote PodCIDR; a translated reply skiff routed by
 *    FIB, SKIFF_FORWARDED_MARK cleared) gets the key of the node owning the
 *    destination and the tunnel's source MAC; one without such a node is
 *    dropped.
 */
#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/metrics.h"
#include "lib/verdict.h"
#include "lib/tunnel.h"

static __always_inline int to_tunnel_ipv4(struct __sk_buff *skb, __u32 *reason)
{
	struct skiff_config *cfg = config_get();
	struct skiff_node_info *node;
	struct ethhdr *eth;
	struct iphdr *ip;
	int ret;

	ip = ipv4_header(skb);
	if (!ip || !cfg)
		return -SKIFF_DROP_NO_TUNNEL;
	node = node_lookup(ip->daddr);
	if (!node || !(node->flags & SKIFF_NODE_F_ENCAP))
		return -SKIFF_DROP_NO_TUNNEL;
	/* The stack sent it from the device's own address, which the
	 * receiving device would drop as a loop. */
	eth = eth_header(skb);
	if (!eth)
		return -SKIFF_DROP_MALFORMED;
	tunnel_set_macs(eth, 0);
	ret = tunnel_set_key(skb, cfg, node->node_ip, 0);
	if (ret < 0)
		return ret;
	*reason = SKIFF_FWD_TUNNEL;
	return TC_ACT_OK;
}

SEC("tc")
int skiff_to_tunnel(struct __sk_buff *skb)
{
	__u32 reason = SKIFF_FWD_NON_IP;
	int ret = -SKIFF_DROP_NO_TUNNEL;

	if (skb->mark == SKIFF_TUNNEL_MARK) {
		skb->mark = 0;
		return TC_ACT_OK;
	}
	if (skb->mark == SKIFF_FORWARDED_MARK)
		skb->mark = 0;
	trace_begin(skb);
	if (eth_is_ipv4(skb) > 0)
		ret = to_tunnel_ipv4(skb, &reason);

	return verdict(skb, ret, reason, SKIFF_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
