/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How a program ends: the verdict counted per reason and direction, drops
 * reported to skiffctl monitor as events, and a traced packet's verdict
 * recorded instead of counted.
 */
#ifndef SKIFF_BPF_VERDICT_H
#define SKIFF_BPF_VERDICT_H

#include "common.h"
#include "maps.h"
#include "metrics.h"
#include "trace.h"

/* A counter that traced packets do not touch. */
static __always_inline void count(const struct __sk_buff *skb, __u32 reason, __u32 dir)
{
	if (!trace_mode(skb))
		metrics_count(reason, dir, skb->len);
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

#endif /* SKIFF_BPF_VERDICT_H */
