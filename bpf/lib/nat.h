/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewriting with the kernel's checksum helpers, which
 * keep L3 and L4 checksums right whatever the skb's checksum state
 * (CHECKSUM_PARTIAL from a local stack, CHECKSUM_COMPLETE from a driver).
 * Every helper here invalidates packet pointers: callers re-read headers.
 */
#ifndef SKIFF_BPF_NAT_H
#define SKIFF_BPF_NAT_H

#include <stddef.h>

#include "common.h"
#include "l4.h"

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))

static __always_inline __u32 l4_csum_off(const struct l4_info *l4)
{
	return l4->off + (l4->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
}

/*
 * Rewrite the destination (dst != 0) or source address and port from
 * old_ip:old_port to new_ip:new_port. Returns 0 or -SKIFF_DROP_CSUM.
 */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct l4_info *l4, int dst, __be32 old_ip,
				       __be32 new_ip, __be16 old_port, __be16 new_port)
{
	/* A zero UDP checksum means "none": leave it (and never produce 0). */
	__u64 mangled = l4->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 csum_off = l4_csum_off(l4);

	if (old_ip != new_ip) {
		if (bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, mangled | BPF_F_PSEUDO_HDR | sizeof(new_ip)) < 0)
			return -SKIFF_DROP_CSUM;
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)) < 0)
			return -SKIFF_DROP_CSUM;
		if (bpf_skb_store_bytes(skb, dst ? IP_DADDR_OFF : IP_SADDR_OFF, &new_ip, sizeof(new_ip), 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)) < 0)
			return -SKIFF_DROP_CSUM;
		if (bpf_skb_store_bytes(skb, l4->off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
			return -SKIFF_DROP_CSUM;
	}
	return 0;
}

#endif /* SKIFF_BPF_NAT_H */
