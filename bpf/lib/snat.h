/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Masquerade (SNAT) of pod traffic leaving the cluster: the node's address
 * as source, the pod's own port when free (else one of the range) and
 * never handed out twice for one destination, replies and ICMP errors
 * translated back. The node's own flows to those destinations are tracked
 * in the same table, so the two never share a tuple. Functions return
 * 0 when the packet is not theirs, 1 when they rewrote it (packet
 * pointers are stale), or a negative drop reason.
 */
#ifndef SKIFF_BPF_SNAT_H
#define SKIFF_BPF_SNAT_H

#include <stddef.h>

#include "common.h"
#include "conntrack.h"
#include "csum.h"
#include "l4.h"
#include "maps.h"
#include "nat.h"
#include "nat_ports.h"
#include "trace.h"

#define ICMP_CSUM_OFF(l4) ((l4)->off + 2)
#define ICMP_ID_OFF(l4) ((l4)->off + 4)

/* The masquerade table's accessors: nothing else touches skiff_snat. */
static __always_inline struct skiff_nat_value *nat_lookup(const struct skiff_ct_key *k)
{
	return bpf_map_lookup_elem(&skiff_snat, k);
}

/* Only when absent: 0, -SKIFF_EEXIST, or another error (table full). */
static __always_inline long nat_insert(const struct skiff_ct_key *k, const struct skiff_nat_value *v)
{
	return bpf_map_update_elem(&skiff_snat, k, v, BPF_NOEXIST);
}

static __always_inline void nat_delete(const struct skiff_ct_key *k)
{
	bpf_map_delete_elem(&skiff_snat, k);
}

/* Rewrite an address and "port" (ICMP: echo identifier) in one direction. */
static __always_inline int snat_rewrite(struct __sk_buff *skb, const struct l4_info *l4, int dst, __be32 old_ip,
					__be32 new_ip, __be16 old_port, __be16 new_port)
{
	if (l4->proto != IPPROTO_ICMP)
		return nat_rewrite(skb, l4, dst, old_ip, new_ip, old_port, new_port);
	/* ICMP's checksum has no pseudo header: the address is the IP
	 * header's business only; the identifier is the ICMP checksum's. */
	if (old_ip != new_ip) {
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)) < 0)
			return -SKIFF_DROP_CSUM;
		if (bpf_skb_store_bytes(skb, dst ? IP_DADDR_OFF : IP_SADDR_OFF, &new_ip, sizeof(new_ip), 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, ICMP_CSUM_OFF(l4), old_port, new_port, sizeof(new_port)) < 0)
			return -SKIFF_DROP_CSUM;
		if (bpf_skb_store_bytes(skb, ICMP_ID_OFF(l4), &new_port, sizeof(new_port), 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	return 0;
}

static __always_inline int snat_exempt(__be32 daddr, const struct skiff_config *cfg)
{
	struct skiff_node_key key = { .prefixlen = 32, .ip = daddr };

	return daddr == cfg->node_ip || bpf_map_lookup_elem(&skiff_nomasq, &key) != NULL;
}

static __always_inline void snat_touch(struct skiff_nat_value *v, const struct l4_info *l4, __u32 bytes)
{
	v->last_seen_ns = bpf_ktime_get_ns();
	v->packets++;
	v->bytes += bytes;
	if (l4->tcp_flags & (TCP_FLAG_FIN_BIT | TCP_FLAG_RST_BIT))
		v->flags |= SKIFF_CT_F_CLOSING;
	else if (l4->tcp_flags & TCP_FLAG_SYN_BIT)
		v->flags &= ~SKIFF_CT_F_CLOSING; /* a new connection on the same tuple */
}

/* The reply tuple of an egress flow translated to nat_port: what the
 * destination will send back to the node. */
static __always_inline void snat_ingress_key(struct skiff_ct_key *k, const struct iphdr *ip, const struct l4_info *l4,
					     __be32 node_ip, __be16 nat_port)
{
	k->saddr = ip->daddr;
	k->daddr = node_ip;
	k->sport = l4->dport;
	k->dport = nat_port;
	k->proto = l4->proto;
	k->dir = SKIFF_SNAT_INGRESS;
	k->pad = 0;
}

/* A socket of the node's would take what arrives on reply tuple k (a
 * connection, a listener, a bound UDP socket): k is not free for a pod.
 * Covers what the node opened before its flows were tracked, or opens
 * before its first packet leaves. */
static __always_inline int snat_node_socket(struct __sk_buff *skb, const struct skiff_ct_key *k)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.saddr = k->saddr;
	t.ipv4.daddr = k->daddr;
	t.ipv4.sport = k->sport;
	t.ipv4.dport = k->dport;
	if (k->proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else if (k->proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else
		return 0;
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* Take reply tuple k for rev's flow (dry: only look). BPF_NOEXIST makes
 * the claim atomic: a tuple is never handed out twice, even by two CPUs.
 * Returns 0 when taken, -SKIFF_EEXIST when in use, another error when the
 * table cannot take it. */
static __always_inline long snat_take(struct __sk_buff *skb, const struct skiff_ct_key *k,
				      const struct skiff_nat_value *rev, int check_node, int dry)
{
	if (check_node && snat_node_socket(skb, k))
		return -SKIFF_EEXIST;
	if (dry)
		return nat_lookup(k) ? -SKIFF_EEXIST : 0;
	return nat_insert(k, rev);
}

/*
 * Take a NAT port for a new flow from ip->saddr (a pod, or the node itself
 * when node is set): its own port when that reply tuple is free, else
 * ports of the configured range. A pod never takes a tuple a node socket
 * answers to; the node's own port is checked against the table only.
 * Returns 0, -SKIFF_DROP_NAT_NO_PORT, or with node set 1 when the own
 * tuple is free but the table is full (the flow cannot be tracked).
 */
static __always_inline int snat_claim(struct __sk_buff *skb, const struct iphdr *ip, const struct l4_info *l4,
				      const struct skiff_config *cfg, __u64 now, __be16 *nat_port, int node, int dry)
{
	struct skiff_nat_value rev = {
		.created_ns = now,
		.last_seen_ns = now,
		.addr = ip->saddr,
		.port = l4->sport,
	};
	struct nat_port_walk w;
	struct skiff_ct_key k;
	long err;

	snat_ingress_key(&k, ip, l4, cfg->node_ip, l4->sport);
	err = snat_take(skb, &k, &rev, !node, dry);
	if (!err) {
		*nat_port = l4->sport;
		return 0;
	}
	if (node && err != -SKIFF_EEXIST)
		return 1;
	if (nat_port_walk_init(&w, cfg) < 0)
		return -SKIFF_DROP_NAT_NO_PORT;
	for (int i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = nat_port_walk_at(&w, i);

		if (!port)
			break;
		snat_ingress_key(&k, ip, l4, cfg->node_ip, port);
		if (!snat_take(skb, &k, &rev, 1, dry)) {
			*nat_port = port;
			return 0;
		}
	}
	return -SKIFF_DROP_NAT_NO_PORT;
}

/* Whether this packet (from a pod, or the node's own) leaves the cluster
 * and is masqueraded under cfg. */
static __always_inline int snat_applies(const struct skiff_config *cfg, const struct iphdr *ip,
					const struct l4_info *l4)
{
	if (!cfg || !(cfg->flags & SKIFF_CFG_F_MASQUERADE) || !cfg->node_ip)
		return 0;
	if (l4->proto == IPPROTO_ICMP && l4->icmp_type != ICMP_ECHO_T)
		return 0;
	return !snat_exempt(ip->daddr, cfg);
}

#define SNAT_FLOW_SEEN 0
#define SNAT_FLOW_NEW 1
#define SNAT_FLOW_UNTRACKED 2
#define SNAT_FLOW_NONE 3

/* What may start a node flow in the table: UDP, an echo request, a TCP SYN
 * without ACK. The node's answers as a server (SYN-ACK, RST to a stray
 * segment) start nothing: a pod's claim already finds that socket, and a
 * flood of spoofed SYNs must not fill the table. */
static __always_inline int snat_node_flow_start(const struct l4_info *l4)
{
	return l4->proto != IPPROTO_TCP || (l4->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) == TCP_FLAG_SYN_BIT;
}

/* The NAT port of this packet's flow: its entry's, or a new claim with
 * both entries set up. Returns SNAT_FLOW_SEEN, SNAT_FLOW_NEW, for node
 * flows SNAT_FLOW_UNTRACKED (table full) or SNAT_FLOW_NONE (not a flow's
 * start), or a negative drop reason. */
static __always_inline int snat_flow_port(struct __sk_buff *skb, const struct iphdr *ip, const struct l4_info *l4,
					  const struct skiff_config *cfg, int node, __be16 *nat_port)
{
	struct skiff_nat_value fwd = {}, *v;
	struct skiff_ct_key key, rkey;
	__u64 now;
	int ret;

	ct_key_init(&key, ip->saddr, ip->daddr, l4, SKIFF_SNAT_EGRESS);
	v = nat_lookup(&key);
	if (v) {
		if (!trace_mode(skb))
			snat_touch(v, l4, skb->len);
		*nat_port = v->port;
		return SNAT_FLOW_SEEN;
	}
	if (node && !snat_node_flow_start(l4))
		return SNAT_FLOW_NONE;
	now = bpf_ktime_get_ns();
	ret = snat_claim(skb, ip, l4, cfg, now, nat_port, node, trace_mode(skb));
	if (ret < 0)
		return ret;
	if (ret == 1) {
		*nat_port = l4->sport;
		return SNAT_FLOW_UNTRACKED;
	}
	trace_note(skb, 0, SKIFF_TRACE_F_NEW, 0);
	fwd.created_ns = fwd.last_seen_ns = now;
	fwd.packets = 1;
	fwd.bytes = skb->len;
	fwd.addr = cfg->node_ip;
	fwd.port = *nat_port;
	if (!trace_mode(skb) && nat_insert(&key, &fwd)) {
		/* Another CPU set this flow up first: give our port back. */
		snat_ingress_key(&rkey, ip, l4, cfg->node_ip, *nat_port);
		nat_delete(&rkey);
		v = nat_lookup(&key);
		if (!v)
			return -SKIFF_DROP_NAT_NO_PORT;
		*nat_port = v->port;
	}
	return SNAT_FLOW_NEW;
}

/* Pod traffic to a destination outside the cluster: source -> node.
 * Callers checked snat_applies() under cfg and made sure the packet will be
 * sent (fib_check). */
static __always_inline int snat_egress(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
				       const struct skiff_config *cfg, __u32 *reason)
{
	__be16 nat_port;
	int ret;

	ret = snat_flow_port(skb, ip, l4, cfg, 0, &nat_port);
	if (ret < 0)
		return ret;
	*reason = ret == SNAT_FLOW_NEW ? SKIFF_SNAT_NEW : SKIFF_SNAT_EGRESS_XLATE;
	ret = snat_rewrite(skb, l4, 0, ip->saddr, cfg->node_ip, l4->sport, nat_port);
	return ret < 0 ? ret : 1;
}

/*
 * The node's own packet to a masqueraded destination (uplink egress): its
 * flow goes into the table like a pod's, so pod flows keep off its tuple;
 * when a pod flow already holds it, the node's new flow leaves from
 * another port and replies are moved back (snat_ingress). Returns 0 (sent
 * as is), 1 (port rewritten) or a negative drop reason.
 */
static __always_inline int snat_node_egress(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
					    const struct skiff_config *cfg, __u32 *reason)
{
	__be16 nat_port;
	int ret;

	ret = snat_flow_port(skb, ip, l4, cfg, 1, &nat_port);
	if (ret < 0 || ret == SNAT_FLOW_NONE)
		return ret < 0 ? ret : 0;
	if (ret == SNAT_FLOW_UNTRACKED)
		*reason = SKIFF_SNAT_NODE_UNTRACKED;
	else if (ret == SNAT_FLOW_SEEN)
		*reason = SKIFF_SNAT_NODE;
	else
		*reason = nat_port == l4->sport ? SKIFF_SNAT_NODE_NEW : SKIFF_SNAT_NODE_MOVED;
	if (nat_port == l4->sport)
		return 0;
	ret = snat_rewrite(skb, l4, 0, ip->saddr, ip->saddr, l4->sport, nat_port);
	return ret < 0 ? ret : 1;
}

/* A reply to a masqueraded flow: destination -> the pod. */
static __always_inline int snat_ingress(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
					__u32 *reason)
{
	struct skiff_nat_value *v;
	struct skiff_ct_key key;
	int ret;

	if (l4->proto == IPPROTO_ICMP && l4->icmp_type != ICMP_ECHOREPLY_T)
		return 0;
	ct_key_init(&key, ip->saddr, ip->daddr, l4, SKIFF_SNAT_INGRESS);
	v = nat_lookup(&key);
	if (!v)
		return 0;
	if (!trace_mode(skb))
		snat_touch(v, l4, skb->len);
	/* The node's own flows map back to the node. */
	*reason = v->addr == ip->daddr ? SKIFF_SNAT_NODE : SKIFF_SNAT_INGRESS_XLATE;
	ret = snat_rewrite(skb, l4, 1, ip->daddr, v->addr, l4->dport, v->port);
	if (ret < 0)
		return ret;
	return 1;
}

/*
 * An ICMP error (unreachable, fragmentation needed, time exceeded) about a
 * masqueraded flow: the quoted packet went out as node:NAT port -> dst.
 * Outer destination -> pod; quoted source address and port -> pod's, with
 * the quoted IP header's checksum and the ICMP checksum kept right, so the
 * pod's stack matches it to its socket (PMTU discovery).
 */
static __always_inline int snat_icmp_error(struct __sk_buff *skb, struct iphdr *ip, const struct l4_info *l4,
					   __u32 *reason)
{
	struct iphdr inner;
	struct skiff_nat_value *v;
	struct skiff_ct_key key = {};
	__u32 inner_off = l4->off + 8, port_off;
	__be16 ports[2], new_check;
	__be32 outer_daddr = ip->daddr;
	__sum16 check;

	/* The quote must hold the inner header and 8 bytes (RFC 792), inside
	 * the IP packet (not trailing bytes of the frame). */
	if (inner_off + sizeof(inner) + 8 > ETH_HLEN + (__u32)bpf_ntohs(ip->tot_len))
		return 0;
	if (bpf_skb_load_bytes(skb, inner_off, &inner, sizeof(inner)) < 0 || inner.ihl != 5)
		return 0;
	if (inner.protocol != IPPROTO_TCP && inner.protocol != IPPROTO_UDP && inner.protocol != IPPROTO_ICMP)
		return 0;
	port_off = inner_off + sizeof(inner) + (inner.protocol == IPPROTO_ICMP ? 4 : 0);
	if (bpf_skb_load_bytes(skb, port_off, ports, sizeof(ports)) < 0)
		return 0;
	/* As if it were a reply to the quoted packet. */
	key.saddr = inner.daddr;
	key.daddr = inner.saddr;
	key.proto = inner.protocol;
	key.dir = SKIFF_SNAT_INGRESS;
	if (inner.protocol == IPPROTO_ICMP) {
		key.dport = ports[0]; /* the echo identifier */
	} else {
		key.sport = ports[1];
		key.dport = ports[0];
	}
	v = nat_lookup(&key);
	if (!v || inner.saddr != outer_daddr)
		return 0;

	/* Quoted source address, with the quoted IP checksum. */
	check = inner.check;
	csum_replace4(&check, inner.saddr, v->addr);
	new_check = check;
	if (bpf_l4_csum_replace(skb, ICMP_CSUM_OFF(l4), inner.saddr, v->addr, 4) < 0 ||
	    bpf_l4_csum_replace(skb, ICMP_CSUM_OFF(l4), inner.check, new_check, 2) < 0 ||
	    bpf_skb_store_bytes(skb, inner_off + offsetof(struct iphdr, saddr), &v->addr, 4, 0) < 0 ||
	    bpf_skb_store_bytes(skb, inner_off + offsetof(struct iphdr, check), &new_check, 2, 0) < 0)
		return -SKIFF_DROP_CSUM;
	/* Quoted source port (echo identifier). The quoted L4 checksum is left
	 * alone: nobody verifies it on a quote that may be cut short. */
	if (ports[0] != v->port) {
		if (bpf_l4_csum_replace(skb, ICMP_CSUM_OFF(l4), ports[0], v->port, 2) < 0 ||
		    bpf_skb_store_bytes(skb, port_off, &v->port, 2, 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	/* Outer destination. */
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, outer_daddr, v->addr, 4) < 0 ||
	    bpf_skb_store_bytes(skb, IP_DADDR_OFF, &v->addr, 4, 0) < 0)
		return -SKIFF_DROP_CSUM;
	*reason = SKIFF_SNAT_ICMP_ERROR;
	return 1;
}

/* ---- fragments: later ones carry no ports, only the datagram's id ---- */

static __always_inline int ipv4_more_fragments(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x2000)) != 0;
}

static __always_inline void frag_key_init(struct skiff_frag_key *k, const struct iphdr *ip)
{
	k->saddr = ip->saddr;
	k->daddr = ip->daddr;
	k->id = ip->id;
	k->proto = ip->protocol;
	k->pad = 0;
}

/* After translating a first fragment (key taken before the rewrite). */
static __always_inline void snat_frag_remember(const struct __sk_buff *skb, const struct skiff_frag_key *k, __be32 addr)
{
	struct skiff_frag_value v = { .addr = addr };

	if (!trace_mode(skb))
		bpf_map_update_elem(&skiff_frags, k, &v, BPF_ANY);
}

/* The translation remembered for this datagram, if any. */
static __always_inline struct skiff_frag_value *snat_frag_lookup(const struct iphdr *ip)
{
	struct skiff_frag_key k;

	frag_key_init(&k, ip);
	return bpf_map_lookup_elem(&skiff_frags, &k);
}

/* A later fragment of a translated datagram: the same address rewrite
 * (source when dst == 0). */
static __always_inline int snat_frag_rewrite(struct __sk_buff *skb, const struct iphdr *ip, int dst, __be32 addr)
{
	__be32 old = dst ? ip->daddr : ip->saddr;

	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, addr, sizeof(addr)) < 0 ||
	    bpf_skb_store_bytes(skb, dst ? IP_DADDR_OFF : IP_SADDR_OFF, &addr, sizeof(addr), 0) < 0)
		return -SKIFF_DROP_CSUM;
	return 0;
}

#endif /* SKIFF_BPF_SNAT_H */
