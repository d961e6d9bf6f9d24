/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Trace mode, for skiffctl trace: packets marked SKIFF_TRACE_MARK change no
 * state and leave what happened to them in skiff_trace (verdict.h writes
 * their verdict, redirect.h where they would have gone).
 */
#ifndef SKIFF_BPF_TRACE_H
#define SKIFF_BPF_TRACE_H

#include "common.h"
#include "maps.h"

static __always_inline int trace_mode(const struct __sk_buff *skb)
{
	__u32 mark;

	/* A load straight from the context at a constant offset: otherwise
	 * clang may keep &skb->mark in a register, and the verifier refuses
	 * dereferencing a context pointer that was moved. */
	asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(mark) : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, mark)));
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

#endif /* SKIFF_BPF_TRACE_H */
