/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load-balancing: DNAT of new and tracked connections to a
 * frontend {VIP, port, proto}, and reverse translation of their replies.
 * Both return SVC_PASS when the packet is not theirs, SVC_TRANSLATED when
 * they rewrote it (packet pointers are then stale), SVC_REJECT when the
 * service has no backend (the caller answers like kube-proxy's REJECT), or
 * a negative drop reason; *reason is set to the service verdict.
 */
#ifndef SKIFF_BPF_SERVICE_H
#define SKIFF_BPF_SERVICE_H

#include <stddef.h>

#include "common.h"
#include "conntrack.h"
#include "csum.h"
#include "endpoints.h"
#include "ipv4.h"
#include "l4.h"
#include "maps.h"
#include "nat.h"
#include "nat_ports.h"
#include "trace.h"

#define SVC_PASS 0
#define SVC_TRANSLATED 1
#define SVC_REJECT 2

#define NSEC_PER_SEC 1000000000ull

static __always_inline struct skiff_service_value *svc_lookup(__be32 vip, __be16 port, __u8 proto, __u16 slot)
{
	struct skiff_service_key key = {
		.vip = vip,
		.port = port,
		.proto = proto,
		.slot = slot,
	};

	return bpf_map_lookup_elem(&skiff_services, &key);
}

static __always_inline struct skiff_l4_addr *svc_backend(__u32 id)
{
	return bpf_map_lookup_elem(&skiff_backends, &id);
}

/* A random backend slot; NULL only if the maps are mid-update. */
static __always_inline struct skiff_l4_addr *svc_pick(__be32 vip, const struct l4_info *l4,
						      const struct skiff_service_value *svc, __u32 *id, __u16 *slot_nr)
{
	struct skiff_service_value *slot;
	__u16 n = (__u16)(bpf_get_prandom_u32() % svc->count) + 1;

	slot = svc_lookup(vip, l4->dport, l4->proto, n);
	if (!slot)
		return NULL;
	*id = slot->backend_id;
	*slot_nr = n;
	return svc_backend(*id);
}

/* A flow hash with no per-boot seed, so every node maps a flow alike. */
static __always_inline __u32 hash_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 svc_flow_hash(__be32 client, __be32 vip, const struct l4_info *l4)
{
	__u32 ports = ((__u32)bpf_ntohs(l4->sport) << 16) | bpf_ntohs(l4->dport);

	return hash_mix(bpf_ntohl(client) ^ hash_mix(ports ^ hash_mix(bpf_ntohl(vip) + l4->proto)));
}

/* Maglev: the frontend's lookup table, indexed by the flow hash. */
static __always_inline struct skiff_l4_addr *svc_maglev(__be32 client, __be32 vip, const struct l4_info *l4,
							const struct skiff_service_value *svc, __u32 *id)
{
	struct skiff_maglev_key key = {
		.revnat_id = svc->revnat_id,
		.index = svc_flow_hash(client, vip, l4) % SKIFF_MAGLEV_SIZE,
	};
	__u32 *bid = bpf_map_lookup_elem(&skiff_maglev, &key);

	if (!bid)
		return NULL;
	*id = *bid;
	return svc_backend(*id);
}

/* sessionAffinity ClientIP: the client's last backend while it is fresh
 * and still one of the service's ready backends (its slot still names it). */
static __always_inline struct skiff_l4_addr *svc_affinity_get(__be32 client, __be32 vip, const struct l4_info *l4,
							      const struct skiff_service_value *svc, __u64 now,
							      __u32 *id, __u16 *slot_nr)
{
	struct skiff_affinity_key key = { .client = client, .revnat_id = svc->revnat_id };
	struct skiff_affinity_value *a = bpf_map_lookup_elem(&skiff_affinity, &key);
	struct skiff_service_value *slot;

	if (!a || (now > a->last_used_ns && now - a->last_used_ns > (__u64)svc->affinity_timeout * NSEC_PER_SEC))
		return NULL;
	if (a->slot == 0 || a->slot > svc->count)
		return NULL;
	slot = svc_lookup(vip, l4->dport, l4->proto, a->slot);
	if (!slot || slot->backend_id != a->backend_id)
		return NULL;
	*id = a->backend_id;
	*slot_nr = a->slot;
	return svc_backend(*id);
}

static __always_inline void svc_affinity_put(__be32 client, const struct skiff_service_value *svc, __u64 now, __u32 id,
					     __u16 slot_nr)
{
	struct skiff_affinity_key key = { .client = client, .revnat_id = svc->revnat_id };
	struct skiff_affinity_value val = { .last_used_ns = now, .backend_id = id, .slot = slot_nr };

	bpf_map_update_elem(&skiff_affinity, &key, &val, BPF_ANY);
}

/*
 * The REPLY entry of a connection whose source is translated: the
 * client's own port when that reply tuple is free, else a port of the
 * masquerade range. BPF_NOEXIST makes the claim atomic, so two clients
 * never share a translated tuple.
 */
static __always_inline int svc_snat_claim(struct skiff_ct_key *rkey, const struct skiff_ct_value *rev, int dry)
{
	struct nat_port_walk w;
	int ret;

	if (dry) /* a trace: what the first try would be, nothing claimed */
		return 0;
	if (!ct_insert(rkey, rev, BPF_NOEXIST))
		return 0;
	ret = nat_port_walk_init(&w, config_get());
	if (ret < 0)
		return ret;
	for (int i = 0; i < NAT_PORT_TRIES; i++) {
		rkey->dport = nat_port_walk_at(&w, i);
		if (!rkey->dport)
			break;
		if (!ct_insert(rkey, rev, BPF_NOEXIST))
			return 0;
	}
	return -SKIFF_DROP_NAT_NO_PORT;
}

/* Rewrite the source of a forward packet when its connection needs it. */
static __always_inline int svc_snat(struct __sk_buff *skb, const struct l4_info *l4, __be32 saddr,
				    const struct skiff_ct_value *ct)
{
	if (!(ct->flags & SKIFF_CT_F_SNAT))
		return 0;
	return nat_rewrite(skb, l4, 0, saddr, ct->snat_addr, l4->sport, ct->snat_port);
}

/* The REPLY entry a packet from a backend would hit, if any: one lookup,
 * the only part of a reply check the packets of other flows pay. */
static __always_inline struct skiff_ct_value *svc_reply_lookup(const struct iphdr *ip, const struct l4_info *l4)
{
	struct skiff_ct_key key;

	ct_key_init(&key, ip->saddr, ip->daddr, l4, SKIFF_CT_REPLY);
	return ct_lookup(&key);
}

/*
 * A reply from a backend of a tracked connection (ct: its REPLY entry):
 * source back to the frontend, and destination back to the client if the
 * source was translated on the way in. Inlined into an out-of-line stage
 * (svc_reply_forward()), which the packets that find no entry never run.
 */
static __always_inline int svc_reverse_xlate(struct __sk_buff *skb, const struct l4_info *l4, struct skiff_ct_value *ct,
					     __u32 *reason)
{
	struct iphdr *ip = ipv4_header(skb);
	__be32 saddr, daddr;
	int ret;

	if (!ip)
		return -SKIFF_DROP_MALFORMED;
	saddr = ip->saddr;
	daddr = ip->daddr;
	trace_note(skb, 0, SKIFF_TRACE_F_BACKEND, ct->backend_id);
	if (!trace_mode(skb))
		ct_touch(ct, l4, skb->len);
	if (!trace_mode(skb) && !(ct->flags & SKIFF_CT_F_REPLIED)) {
		/* First answer: the connection is established on both entries
		 * (the forward key is the client's original tuple). */
		struct skiff_ct_key fkey = {
			.saddr = ct->snat_addr,
			.daddr = ct->nat_addr,
			.sport = ct->snat_port,
			.dport = ct->nat_port,
			.proto = l4->proto,
			.dir = SKIFF_CT_FORWARD,
		};
		struct skiff_ct_value *fwd = ct_lookup(&fkey);

		ct->flags = (ct->flags & ~SKIFF_CT_F_CLOSING) | SKIFF_CT_F_REPLIED;
		if (fwd)
			fwd->flags |= SKIFF_CT_F_REPLIED;
	}
	ret = nat_rewrite(skb, l4, 0, saddr, ct->nat_addr, l4->sport, ct->nat_port);
	if (ret < 0)
		return ret;
	if (ct->flags & SKIFF_CT_F_SNAT) {
		ret = nat_rewrite(skb, l4, 1, daddr, ct->snat_addr, l4->dport, ct->snat_port);
		if (ret < 0)
			return ret;
	}
	*reason = SKIFF_SVC_REPLY;
	return SVC_TRANSLATED;
}

/* A reply from a backend of a tracked connection, if the packet is one (ip:
 * the packet's current header): see svc_reverse_xlate(). Inlined, for
 * callers that are out of line themselves. */
static __always_inline int svc_reverse(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4, __u32 *reason)
{
	struct skiff_ct_value *ct = svc_reply_lookup(ip, l4);

	if (!ct)
		return SVC_PASS;
	return svc_reverse_xlate(skb, l4, ct, reason);
}

/* Destination to the backend (addr:port), source translated too when the
 * connection's entry says so. */
static __always_inline int svc_translate(struct __sk_buff *skb, const struct l4_info *l4, __be32 vip, __be32 addr,
					 __be16 port, __be32 client, const struct skiff_ct_value *ct)
{
	int ret = nat_rewrite(skb, l4, 1, vip, addr, l4->dport, port);

	if (ret < 0)
		return ret;
	ret = svc_snat(skb, l4, client, ct);
	return ret < 0 ? ret : SVC_TRANSLATED;
}

/* A new connection (a SYN) on the tuple of a closed one: its own life cycle,
 * on both halves. rev: the caller's space for a REPLY entry (a call chain
 * has 512 bytes of BPF stack in all). */
static __always_inline void svc_reopen(struct skiff_ct_value *ct, const struct l4_info *l4, __be32 client, __be32 vip,
				       struct skiff_ct_value *rev)
{
	int snat = ct->flags & SKIFF_CT_F_SNAT;
	struct skiff_ct_key rk = {
		.saddr = ct->nat_addr,
		.daddr = snat ? ct->snat_addr : client,
		.sport = ct->nat_port,
		.dport = snat ? ct->snat_port : l4->sport,
		.proto = l4->proto,
		.dir = SKIFF_CT_REPLY,
	};
	struct skiff_ct_value *rv = ct_lookup(&rk);

	ct->flags = SKIFF_CT_F_SYN | snat;
	if (rv) {
		rv->flags = SKIFF_CT_F_SYN | (rv->flags & SKIFF_CT_F_SNAT);
		return;
	}
	/* The REPLY half went (evicted, or expired just as the tuple came
	 * back): without it the backend's answer would reach the client
	 * untranslated. */
	*rev = *ct;
	rev->created_ns = rev->last_seen_ns = bpf_ktime_get_ns();
	rev->packets = rev->bytes = 0;
	rev->nat_addr = vip;
	rev->nat_port = l4->dport;
	rev->snat_addr = client;
	rev->snat_port = l4->sport;
	ct_insert(&rk, rev, BPF_NOEXIST);
}

/* A packet of a tracked connection whose backend is still there (rev: as
 * for svc_reopen()). */
static __always_inline int svc_established(struct __sk_buff *skb, const struct l4_info *l4, struct skiff_ct_value *ct,
					   __be32 client, __be32 vip, struct skiff_ct_value *rev, __u32 *reason)
{
	const int dry = trace_mode(skb);

	trace_note(skb, 0, SKIFF_TRACE_F_BACKEND, ct->backend_id);
	if (!dry && (ct->flags & SKIFF_CT_F_CLOSING) &&
	    (l4->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) == TCP_FLAG_SYN_BIT)
		svc_reopen(ct, l4, client, vip, rev);
	if (!dry)
		ct_touch(ct, l4, skb->len);
	*reason = SKIFF_SVC_ESTABLISHED;
	/* The address the connection started with: its REPLY entry is keyed
	 * by it. */
	return svc_translate(skb, l4, vip, ct->nat_addr, ct->nat_port, client, ct);
}

/* A backend for a new connection: by affinity, Maglev or the flow hash
 * (*id, *slot_nr set), or NULL. */
static __always_inline struct skiff_l4_addr *svc_choose(__be32 client, __be32 vip, const struct l4_info *l4,
							const struct skiff_service_value *svc, __u64 now, int dry,
							__u32 *id, __u16 *slot_nr)
{
	struct skiff_l4_addr *be = NULL;

	if (svc->flags & SKIFF_SVC_F_AFFINITY) {
		/* Affinity picks by slot (it must know its slot to stay valid). */
		be = svc_affinity_get(client, vip, l4, svc, now, id, slot_nr);
		if (!be)
			be = svc_pick(vip, l4, svc, id, slot_nr);
		if (be && !dry)
			svc_affinity_put(client, svc, now, *id, *slot_nr);
		return be;
	}
	if (svc->flags & SKIFF_SVC_F_MAGLEV)
		be = svc_maglev(client, vip, l4, svc, id);
	if (!be)
		be = svc_pick(vip, l4, svc, id, slot_nr);
	return be;
}

/* The two entries of a new connection to backend be (id) and the REPLY
 * key: the source translated for a hairpin, and for a remote backend when
 * snat_remote is set. */
static __always_inline void svc_new_entries(struct skiff_ct_value *fwd, struct skiff_ct_value *rev,
					    struct skiff_ct_key *rkey, const struct skiff_l4_addr *be,
					    const struct skiff_service_value *svc, const struct l4_info *l4,
					    __be32 client, __be32 vip, __u32 id, __u64 now, __u32 len,
					    __be32 snat_remote)
{
	fwd->created_ns = fwd->last_seen_ns = now;
	fwd->packets = 1;
	fwd->bytes = len;
	fwd->backend_id = id;
	fwd->nat_addr = be->ip;
	fwd->nat_port = be->port;
	fwd->revnat_id = svc->revnat_id;
	fwd->flags = (l4->tcp_flags & TCP_FLAG_SYN_BIT) ? SKIFF_CT_F_SYN : 0;
	if (be->ip == client) {
		fwd->flags |= SKIFF_CT_F_SNAT;
		fwd->snat_addr = bpf_htonl(SKIFF_HAIRPIN_ADDR);
	} else if (snat_remote) {
		struct skiff_endpoint_info *ep = endpoint_lookup(be->ip);

		if (!ep || !(ep->flags & SKIFF_EP_F_LOCAL)) {
			fwd->flags |= SKIFF_CT_F_SNAT;
			fwd->snat_addr = snat_remote;
		}
	}
	fwd->snat_port = l4->sport;

	*rev = *fwd;
	rev->packets = rev->bytes = 0;
	rev->nat_addr = vip;
	rev->nat_port = l4->dport;
	rev->snat_addr = client;
	rev->snat_port = l4->sport;

	rkey->saddr = be->ip;
	rkey->daddr = (fwd->flags & SKIFF_CT_F_SNAT) ? fwd->snat_addr : client;
	rkey->sport = be->port;
	rkey->dport = l4->sport;
	rkey->proto = l4->proto;
	rkey->dir = SKIFF_CT_REPLY;
	rkey->pad = 0;
}

/*
 * A packet to a service frontend: to the connection's backend, choosing one
 * for a new connection (or when the old one went away). The source is
 * translated too for a hairpin (to SKIFF_HAIRPIN_ADDR) and, when
 * snat_remote is set (NodePort, externalTrafficPolicy Cluster), for
 * backends on other nodes, so their replies come back through this node.
 */
static __always_inline int svc_forward(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4, __u32 *reason,
				       __be32 snat_remote)
{
	struct skiff_ct_value fwd = {}, rev = {}, *ct;
	struct skiff_ct_key key, rkey;
	struct skiff_service_value *svc;
	struct skiff_l4_addr *be = NULL;
	__be32 vip = ip->daddr, client = ip->saddr;
	const int dry = trace_mode(skb);
	__u16 slot_nr = 0;
	__u64 now;
	__u32 id = 0;
	int ret;

	svc = svc_lookup(vip, l4->dport, l4->proto, 0);
	if (!svc)
		return SVC_PASS;

	ct_key_init(&key, client, vip, l4, SKIFF_CT_FORWARD);
	ct = ct_lookup(&key);
	if (ct)
		be = svc_backend(ct->backend_id);
	if (ct && be)
		return svc_established(skb, l4, ct, client, vip, &rev, reason);

	if (svc->count == 0)
		return SVC_REJECT;
	now = bpf_ktime_get_ns();
	be = svc_choose(client, vip, l4, svc, now, dry, &id, &slot_nr);
	if (!be)
		return SVC_REJECT;
	trace_note(skb, 0, SKIFF_TRACE_F_BACKEND | SKIFF_TRACE_F_NEW, id);
	if (ct && !dry) /* its backend was removed: move the flow to a live one */
		ct_remove(&key);

	svc_new_entries(&fwd, &rev, &rkey, be, svc, l4, client, vip, id, now, skb->len, snat_remote);

	if (fwd.flags & SKIFF_CT_F_SNAT) {
		/* The translated source port must be ours alone. */
		ret = svc_snat_claim(&rkey, &rev, dry);
		if (ret < 0)
			return ret;
		fwd.snat_port = rkey.dport;
		ret = 0;
		if (!dry && ct_insert(&key, &fwd, BPF_NOEXIST)) {
			ct_remove(&rkey);
			ret = 1;
		}
	} else if (dry) {
		ret = 0; /* a trace leaves no conntrack entry */
	} else {
		ret = ct_create(&key, &fwd, &rkey, &rev);
		if (ret < 0)
			return ret;
	}
	*reason = SKIFF_SVC_NEW;
	if (ret == 1) { /* another CPU won the race: follow its choice */
		ct = ct_lookup(&key);
		if (!ct)
			return -SKIFF_DROP_CT_FULL;
		be = svc_backend(ct->backend_id);
		if (!be)
			return SVC_REJECT;
		return svc_translate(skb, l4, vip, be->ip, be->port, client, ct);
	}
	return svc_translate(skb, l4, vip, be->ip, be->port, client, &fwd);
}

/*
 * An ICMP error about a service connection whose quote (the packet as the
 * backend was sent it) already names the client as source, e.g. after
 * snat_icmp_error() for a masqueraded connection: the quoted destination
 * goes back to the frontend, with the quoted IP header's checksum and the
 * ICMP checksum kept right, so the client's stack finds the socket it
 * connected to the frontend (PMTU discovery). The outer header and the
 * quoted transport checksum are left alone. Returns SVC_TRANSLATED,
 * SVC_PASS, or a negative drop reason.
 */
static __always_inline int svc_icmp_error_reverse(struct __sk_buff *skb, const struct iphdr *ip,
						  const struct l4_info *l4, __u32 *reason)
{
	__u32 inner_off = l4->off + 8, icmp_csum_off = l4->off + 2;
	struct skiff_ct_key key = {};
	struct skiff_ct_value *ct;
	struct iphdr inner;
	__be16 ports[2], vport;
	__sum16 check;
	__be32 vip;

	if (inner_off + sizeof(inner) + 8 > ETH_HLEN + (__u32)bpf_ntohs(ip->tot_len))
		return SVC_PASS;
	if (bpf_skb_load_bytes(skb, inner_off, &inner, sizeof(inner)) < 0 || inner.ihl != 5)
		return SVC_PASS;
	if (inner.protocol != IPPROTO_TCP && inner.protocol != IPPROTO_UDP)
		return SVC_PASS;
	if (bpf_skb_load_bytes(skb, inner_off + sizeof(inner), ports, sizeof(ports)) < 0)
		return SVC_PASS;
	/* As if it were the backend's reply to the quoted packet. */
	key.saddr = inner.daddr;
	key.daddr = inner.saddr;
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = inner.protocol;
	key.dir = SKIFF_CT_REPLY;
	ct = ct_lookup(&key);
	if (!ct)
		return SVC_PASS;
	vip = ct->nat_addr;
	vport = ct->nat_port;

	check = inner.check;
	csum_replace4(&check, inner.daddr, vip);
	if (bpf_l4_csum_replace(skb, icmp_csum_off, inner.daddr, vip, sizeof(vip)) < 0 ||
	    bpf_l4_csum_replace(skb, icmp_csum_off, inner.check, check, sizeof(check)) < 0 ||
	    bpf_skb_store_bytes(skb, inner_off + offsetof(struct iphdr, daddr), &vip, sizeof(vip), 0) < 0 ||
	    bpf_skb_store_bytes(skb, inner_off + offsetof(struct iphdr, check), &check, sizeof(check), 0) < 0)
		return -SKIFF_DROP_CSUM;
	if (ports[1] != vport) {
		if (bpf_l4_csum_replace(skb, icmp_csum_off, ports[1], vport, sizeof(vport)) < 0 ||
		    bpf_skb_store_bytes(skb, inner_off + sizeof(inner) + 2, &vport, sizeof(vport), 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	*reason = SKIFF_SVC_REPLY;
	return SVC_TRANSLATED;
}

/*
 * A pod opens a flow straight to an address (no service): a REPLY entry
 * of an earlier service connection on the same 4-tuple (a backend reached
 * through its VIP, then directly with a reused source port) would turn
 * this flow's replies into the VIP's. Such an entry is stale: drop it,
 * with its FORWARD half. Checked for new TCP connections and for UDP.
 */
static __always_inline void svc_purge_stale_reply_body(const struct iphdr *ip, const struct l4_info *l4)
{
	struct skiff_ct_key rkey = {
		.saddr = ip->daddr,
		.daddr = ip->saddr,
		.sport = l4->dport,
		.dport = l4->sport,
		.proto = l4->proto,
		.dir = SKIFF_CT_REPLY,
	};
	struct skiff_ct_value *rev;

	rev = ct_lookup(&rkey);
	if (!rev)
		return;
	if (!(rev->flags & SKIFF_CT_F_SNAT)) {
		struct skiff_ct_key fkey = {
			.saddr = ip->saddr,
			.daddr = rev->nat_addr,
			.sport = l4->sport,
			.dport = rev->nat_port,
			.proto = l4->proto,
			.dir = SKIFF_CT_FORWARD,
		};

		ct_remove(&fkey);
	}
	ct_remove(&rkey);
}

/* Out of line for the packets of the pod-to-pod path (most never get
 * there: only a TCP SYN or UDP does). */
static __noinline void svc_purge_stale_reply_do(const struct iphdr *ip, const struct l4_info *l4)
{
	svc_purge_stale_reply_body(ip, l4);
}

static __always_inline int svc_purge_applies(struct __sk_buff *skb, const struct l4_info *l4)
{
	if (trace_mode(skb))
		return 0;
	if (l4->proto == IPPROTO_TCP && (l4->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) != TCP_FLAG_SYN_BIT)
		return 0;
	return l4->proto == IPPROTO_TCP || l4->proto == IPPROTO_UDP;
}

static __always_inline void svc_purge_stale_reply(struct __sk_buff *skb, const struct iphdr *ip,
						  const struct l4_info *l4)
{
	if (svc_purge_applies(skb, l4))
		svc_purge_stale_reply_do(ip, l4);
}

/* The same, inlined: for callers that are out of line themselves (the
 * BPF stack of a call chain is limited to 512 bytes). */
static __always_inline void svc_purge_stale_reply_inline(struct __sk_buff *skb, const struct iphdr *ip,
							 const struct l4_info *l4)
{
	if (svc_purge_applies(skb, l4))
		svc_purge_stale_reply_body(ip, l4);
}

#endif /* SKIFF_BPF_SERVICE_H */
