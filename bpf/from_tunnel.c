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
#include "lib/node_ingress.h"

SEC("tc")
int skiff_from_tunnel(struct __sk_buff *skb)
{
	return node_ingress(skb, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
