/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load-balancing: DNAT of new and tracked connections to a
 * frontend {VIP, port, proto}, and reverse translation of their replies.
 * Both return 0 when the packet is not theirs, 1 when they translated it
 * (packet pointers are then stale), or a negative drop reason; *reason is
 * set to the service verdict for the metrics.
 */
#ifndef SKIFF_BPF_SERVICE_H
#define SKIFF_BPF_SERVICE_H

#include "common.h"
#include "conntrack.h"
#include "l4.h"
#include "maps.h"
#include "nat.h"

static __always_inline struct skiff_service_value *svc_lookup(__be32 vip, __be16 port, __u8 proto, __u16 slot)
{
	struct skiff_service_key key = {
		.vip = vip, .port = port, .proto = proto, .slot = slot,
	};

	return bpf_map_lookup_elem(&skiff_services, &key);
}

static __always_inline struct skiff_backend *svc_backend(__u32 id)
{
	return bpf_map_lookup_elem(&skiff_backends, &id);
}

/* A random backend slot; NULL only if the maps are mid-update. */
static __always_inline struct skiff_backend *svc_pick(__be32 vip, const struct l4_info *l4,
						      const struct skiff_service_value *svc, __u32 *id)
{
	struct skiff_service_value *slot;
	__u16 n = (__u16)(bpf_get_prandom_u32() % svc->count) + 1;

	slot = svc_lookup(vip, l4->dport, l4->proto, n);
	if (!slot)
		return NULL;
	*id = slot->backend_id;
	return svc_backend(*id);
}

/* A reply from a backend of a tracked connection: source back to the VIP. */
static __always_inline int svc_reverse(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
				       __u32 *reason)
{
	struct skiff_ct_value *ct;
	struct skiff_ct_key key;
	int ret;

	ct_key_init(&key, ip->saddr, ip->daddr, l4, SKIFF_CT_REPLY);
	ct = bpf_map_lookup_elem(&skiff_ct, &key);
	if (!ct)
		return 0;
	ct_touch(ct, l4, skb->len);
	ret = nat_rewrite(skb, l4, 0, ip->saddr, ct->nat_addr, l4->sport, ct->nat_port);
	if (ret < 0)
		return ret;
	*reason = SKIFF_SVC_REPLY;
	return 1;
}

/* A packet to a service frontend: to the connection's backend, choosing one
 * for a new connection (or when the old one went away). */
static __always_inline int svc_forward(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
				       __u32 *reason)
{
	struct skiff_ct_value fwd = {}, rev = {}, *ct;
	struct skiff_ct_key key, rkey;
	struct skiff_service_value *svc;
	struct skiff_backend *be = NULL;
	__be32 vip = ip->daddr, client = ip->saddr;
	__u32 id = 0;
	int ret;

	svc = svc_lookup(vip, l4->dport, l4->proto, 0);
	if (!svc)
		return 0;

	ct_key_init(&key, client, vip, l4, SKIFF_CT_FORWARD);
	ct = bpf_map_lookup_elem(&skiff_ct, &key);
	if (ct)
		be = svc_backend(ct->backend_id);
	if (ct && be) {
		ct_touch(ct, l4, skb->len);
		*reason = SKIFF_SVC_ESTABLISHED;
	} else {
		if (svc->count == 0)
			return -SKIFF_DROP_NO_BACKEND;
		be = svc_pick(vip, l4, svc, &id);
		if (!be)
			return -SKIFF_DROP_NO_BACKEND;
		if (ct) /* its backend was removed: move the flow, keep the entry */
			bpf_map_delete_elem(&skiff_ct, &key);

		fwd.created_ns = fwd.last_seen_ns = bpf_ktime_get_ns();
		fwd.packets = 1;
		fwd.bytes = skb->len;
		fwd.backend_id = id;
		fwd.nat_addr = be->ip;
		fwd.nat_port = be->port;
		fwd.revnat_id = svc->revnat_id;
		fwd.flags = (l4->tcp_flags & TCP_FLAG_SYN_BIT) ? SKIFF_CT_F_SYN : 0;
		rev = fwd;
		rev.packets = rev.bytes = 0;
		rev.nat_addr = vip;
		rev.nat_port = l4->dport;

		rkey.saddr = be->ip;
		rkey.daddr = client;
		rkey.sport = be->port;
		rkey.dport = l4->sport;
		rkey.proto = l4->proto;
		rkey.dir = SKIFF_CT_REPLY;
		rkey.pad = 0;

		ret = ct_create(&key, &fwd, &rkey, &rev);
		if (ret < 0)
			return ret;
		if (ret == 1) { /* lost the race: follow the winner's choice */
			ct = bpf_map_lookup_elem(&skiff_ct, &key);
			if (!ct)
				return -SKIFF_DROP_CT_FULL;
			be = svc_backend(ct->backend_id);
			if (!be)
				return -SKIFF_DROP_NO_BACKEND;
		}
		*reason = SKIFF_SVC_NEW;
	}
	ret = nat_rewrite(skb, l4, 1, vip, be->ip, l4->dport, be->port);
	if (ret < 0)
		return ret;
	return 1;
}

#endif /* SKIFF_BPF_SERVICE_H */
