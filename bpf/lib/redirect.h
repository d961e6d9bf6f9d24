/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Redirects: the packet leaves through another device, and a traced packet
 * records where it would have gone instead.
 */
#ifndef SKIFF_BPF_REDIRECT_H
#define SKIFF_BPF_REDIRECT_H

#include "common.h"
#include "trace.h"

static __always_inline long skiff_redirect_peer(struct __sk_buff *skb, __u32 ifindex)
{
	trace_note(skb, ifindex, SKIFF_TRACE_F_REDIRECT_PEER, 0);
	return bpf_redirect_peer(ifindex, 0);
}

/* Out of a device (not into a pod): marked for the uplink's egress. */
static __always_inline void mark_forwarded(struct __sk_buff *skb)
{
	if (!trace_mode(skb))
		skb->mark = SKIFF_FORWARDED_MARK;
}

static __always_inline long skiff_redirect(struct __sk_buff *skb, __u32 ifindex)
{
	trace_note(skb, ifindex, 0, 0);
	mark_forwarded(skb);
	return bpf_redirect(ifindex, 0);
}

static __always_inline long skiff_redirect_neigh(struct __sk_buff *skb, __u32 ifindex, struct bpf_redir_neigh *nh)
{
	trace_note(skb, ifindex, 0, 0);
	mark_forwarded(skb);
	return bpf_redirect_neigh(ifindex, nh, sizeof(*nh), 0);
}

#endif /* SKIFF_BPF_REDIRECT_H */
