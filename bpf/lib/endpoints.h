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

/* 0 when ip belongs to the pod behind ifindex, with *src its entry, else
 * -SKIFF_DROP_INVALID_SOURCE. */
static __always_inline int endpoint_check_source(__be32 ip, __u32 ifindex, struct skiff_endpoint_info **src)
{
	struct skiff_endpoint_info *ep = endpoint_lookup(ip);

	if (!ep || ep->ifindex != ifindex)
		return -SKIFF_DROP_INVALID_SOURCE;
	*src = ep;
	return 0;
}

/* Whether a service REPLY entry may match the packets of the pod at ep
 * (see SKIFF_EP_F_NO_SVC_REPLY). */
static __always_inline int endpoint_may_reply(const struct skiff_endpoint_info *ep)
{
	return !(ep->flags & SKIFF_EP_F_NO_SVC_REPLY);
}

/* A service REPLY entry is being made for ip: if it is a pod here, its
 * packets look for such entries from now on. */
static __always_inline void endpoint_note_reply(__be32 ip)
{
	struct skiff_endpoint_info *ep = endpoint_lookup(ip);

	if (ep && (ep->flags & SKIFF_EP_F_NO_SVC_REPLY))
		__sync_fetch_and_and(&ep->flags, ~SKIFF_EP_F_NO_SVC_REPLY);
}

#endif /* SKIFF_BPF_ENDPOINTS_H */
