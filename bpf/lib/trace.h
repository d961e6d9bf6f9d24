/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Observability: drop/trace events for skiffctl monitor, and trace mode
 * for skiffctl trace (packets marked SKIFF_TRACE_MARK change no state and
 * leave their verdict in skiff_trace).
 */
#ifndef SKIFF_BPF_TRACE_H
#define SKIFF_BPF_TRACE_H

#include "common.h"
#include "maps.h"
#include "metrics.h"

static __always_inline int trace_mode(const struct __sk_buff *skb)
{
	__u32 mark;

	/* A load straight from the context at a constant offset: otherwise
	 * clang may keep &skb->mark in a register, and the verifier refuses
	 * dereferencing a context pointer that was moved. */
	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(mark)
		     : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, mark)));
	return mark == SKIFF_TRACE_MARK;
}

static __always_inline struct skiff_trace_result *trace_result(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&skiff_trace, &zero);
}

/* Start a traced run: clear the previous result. Out of line, like the
 * rest of tracing's work: packets that are not traced only test the mark. */
static __noinline void trace_begin_traced(void)
{
	struct skiff_trace_result *t = trace_result();

	if (t) {
		__u32 seq = t->seq + 1;

		__builtin_memset(t, 0, sizeof(*t));
		t->seq = seq;
	}
}

static __always_inline void trace_begin(const struct __sk_buff *skb)
{
	if (unlikely(trace_mode(skb)))
		trace_begin_traced();
}

/* The result a traced packet writes to; NULL for every other packet. */
static __always_inline struct skiff_trace_result *trace_result_of(const struct __sk_buff *skb)
{
	return trace_mode(skb) ? trace_result() : NULL;
}

static __always_inline void trace_note(const struct __sk_buff *skb, __u32 ifindex, __u32 flags, __u32 backend_id)
{
	struct skiff_trace_result *t = trace_result_of(skb);

	if (!t)
		return;
	if (ifindex)
		t->redirect_ifindex = ifindex;
	if (flags & SKIFF_TRACE_F_BACKEND)
		t->backend_id = backend_id;
	t->flags |= flags;
}

/* The tunnel key a traced packet would have been sent with. */
static __always_inline void trace_note_tunnel(const struct __sk_buff *skb, __be32 remote, __u32 vni)
{
	struct skiff_trace_result *t = trace_result_of(skb);

	if (!t)
		return;
	t->tunnel_remote = remote;
	t->tunnel_vni = vni;
	t->flags |= SKIFF_TRACE_F_TUNNEL;
}

/* A counter that traced packets do not touch. */
static __always_inline void count(const struct __sk_buff *skb, __u32 reason, __u32 dir)
{
	if (!trace_mode(skb))
		metrics_count(reason, dir, skb->len);
}

/* Redirect helpers that tell a trace where the packet would have gone. */
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

/* One event per drop (and per traced packet): the IPv4 tuple if any. */
static __noinline void event_emit(struct __sk_buff *skb, __u8 type, __u32 reason, __u32 dir)
{
	struct skiff_event *e;
	struct iphdr ip;
	__be16 ports[2] = {};

	e = bpf_ringbuf_reserve(&skiff_events, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->dir = dir;
	e->reason = reason;
	e->ifindex = skb->ifindex;
	e->len = skb->len;
	if (skb->protocol == bpf_htons(ETH_P_IP) && !bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) &&
	    ip.version == 4) {
		e->saddr = ip.saddr;
		e->daddr = ip.daddr;
		e->proto = ip.protocol;
		if ((ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) && ip.ihl >= 5 &&
		    !bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, ports, sizeof(ports))) {
			e->sport = ports[0];
			e->dport = ports[1];
		}
	}
	bpf_ringbuf_submit(e, 0);
}

static __noinline void verdict_traced(struct __sk_buff *skb, int action, __u32 why, __u32 dir)
{
	struct skiff_trace_result *t = trace_result();

	if (t) {
		t->reason = why;
		t->action = action;
	}
	event_emit(skb, SKIFF_EVENT_TRACE, why, dir);
}

/* The end of every program: count (not when tracing), record, report. */
static __always_inline int verdict(struct __sk_buff *skb, int ret, __u32 reason, __u32 dir)
{
	int action = ret < 0 ? TC_ACT_SHOT : ret;
	__u32 why = ret < 0 ? (__u32)-ret : reason;

	if (unlikely(trace_mode(skb))) {
		verdict_traced(skb, action, why, dir);
		return action;
	}
	metrics_count(why, dir, skb->len);
	if (unlikely(ret < 0))
		event_emit(skb, SKIFF_EVENT_DROP, why, dir);
	return action;
}

#endif /* SKIFF_BPF_TRACE_H */
