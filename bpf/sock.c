// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level service translation for the node's own processes and
 * host-network pods (cgroup sock_addr hooks). A connect() or sendto() to a
 * service frontend is pointed at a backend before any packet exists, so
 * no per-packet NAT and no conntrack are needed; for UDP, replies are made
 * to look like they came from the frontend (recvmsg, getpeername).
 *
 * Only sockets of the node's network namespace are touched (the cgroup
 * may hold processes of other namespaces).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/service.h"

#define SOCK_PASS 1 /* cgroup hooks: 1 lets the call proceed */

static __always_inline int sock_in_scope(struct bpf_sock_addr *ctx)
{
	struct skiff_config *cfg = config_get();

	return cfg && cfg->netns_cookie && bpf_get_netns_cookie(ctx) == cfg->netns_cookie;
}

static __always_inline int sock_translate(struct bpf_sock_addr *ctx)
{
	struct skiff_sock_revnat_key rkey = {};
	struct skiff_sock_revnat_value rval = {};
	struct skiff_service_value *svc;
	struct skiff_l4_addr *be;
	struct l4_info l4 = {};
	__be32 vip = ctx->user_ip4;
	__u16 slot_nr = 0;
	__u32 id = 0;

	if (!sock_in_scope(ctx))
		return SOCK_PASS;
	l4.proto = ctx->protocol;
	l4.dport = (__be16)ctx->user_port;
	if (l4.proto != IPPROTO_TCP && l4.proto != IPPROTO_UDP)
		return SOCK_PASS;
	svc = svc_lookup(vip, l4.dport, l4.proto, 0);
	if (!svc || svc->count == 0)
		return SOCK_PASS; /* no backend: the packet path rejects it */
	be = svc_pick(vip, &l4, svc, &id, &slot_nr);
	if (!be)
		return SOCK_PASS;
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
	if (l4.proto == IPPROTO_UDP) {
		rkey.cookie = bpf_get_socket_cookie(ctx);
		rkey.addr = be->ip;
		rkey.port = be->port;
		rval.vip = vip;
		rval.port = l4.dport;
		bpf_map_update_elem(&skiff_sock_rnat, &rkey, &rval, BPF_ANY);
	}
	return SOCK_PASS;
}

/* The reverse: a peer address that is a backend of a translated UDP socket
 * is reported as the frontend. */
static __always_inline int sock_reverse(struct bpf_sock_addr *ctx)
{
	struct skiff_sock_revnat_key rkey = {};
	struct skiff_sock_revnat_value *rval;

	if (!sock_in_scope(ctx) || ctx->protocol != IPPROTO_UDP)
		return SOCK_PASS;
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.addr = ctx->user_ip4;
	rkey.port = (__u16)ctx->user_port;
	rval = bpf_map_lookup_elem(&skiff_sock_rnat, &rkey);
	if (rval) {
		ctx->user_ip4 = rval->vip;
		ctx->user_port = rval->port;
	}
	return SOCK_PASS;
}

SEC("cgroup/connect4")
int skiff_connect4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/sendmsg4")
int skiff_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/recvmsg4")
int skiff_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_reverse(ctx);
}

SEC("cgroup/getpeername4")
int skiff_getpeer4(struct bpf_sock_addr *ctx)
{
	return sock_reverse(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
