// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress on the node's uplink: traffic from other nodes and from
 * outside the cluster, handled as lib/node_ingress.h says.
 */
#include "lib/node_ingress.h"

SEC("tc")
int skiff_uplink(struct __sk_buff *skb)
{
	return node_ingress(skb, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
