/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Endpoint (local pod) lookups. */
#ifndef SKIFF_BPF_ENDPOINTS_H
#define SKIFF_BPF_ENDPOINTS_H

#include "maps.h"

static __always_inline struct skiff_endpoint_info *endpoint_lookup(__be32 ip)
{
	struct skiff_endpoint_key key = { .ip = ip };

	return bpf_map_lookup_elem(&skiff_endpoints, &key);
}

/* 0 when ip belongs to the pod behind ifindex, else -SKIFF_DROP_INVALID_SOURCE:
 * the pod's slot in skiff_pod_srcs when it holds this veth and address, else
 * the endpoints map, which decides. */
static __always_inline int endpoint_check_source(__be32 ip, __u32 ifindex)
{
	struct skiff_pod_source want __attribute__((aligned(8))) = { .ifindex = ifindex, .ip = ip };
	__u32 slot = ifindex & (SKIFF_POD_SOURCES_MAX - 1);
	struct skiff_pod_source *src = bpf_map_lookup_elem(&skiff_pod_srcs, &slot);
	struct skiff_endpoint_info *ep;

	/* Both fields in one 8-byte load: a slot rewritten for another veth
	 * meanwhile is never read half old, half new. */
	if (likely(src && *(__u64 *)src == *(__u64 *)&want))
		return 0;
	ep = endpoint_lookup(ip);
	if (!ep || ep->ifindex != ifindex)
		return -SKIFF_DROP_INVALID_SOURCE;
	return 0;
}

#endif /* SKIFF_BPF_ENDPOINTS_H */
