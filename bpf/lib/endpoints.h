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

/* 0 when ip belongs to the pod behind ifindex, else -SKIFF_DROP_INVALID_SOURCE. */
static __always_inline int endpoint_check_source(__be32 ip, __u32 ifindex)
{
	struct skiff_endpoint_info *ep = endpoint_lookup(ip);

	if (!ep || ep->ifindex != ifindex)
		return -SKIFF_DROP_INVALID_SOURCE;
	return 0;
}

#endif /* SKIFF_BPF_ENDPOINTS_H */
