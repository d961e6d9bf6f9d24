/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental Internet checksum updates (RFC 1624), for direct writes. */
#ifndef SKIFF_BPF_CSUM_H
#define SKIFF_BPF_CSUM_H

#include "common.h"

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') for one 16-bit word m replaced by m'. */
static __always_inline void csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
	__u32 sum = (__u16) ~*check;

	sum += (__u16)~old;
	sum += new;
	*check = (__sum16)~csum_fold32(sum);
}

/* The same for a 32-bit field (an IPv4 address) replaced as two words. */
static __always_inline void csum_replace4(__sum16 *check, __be32 old, __be32 new)
{
	__u32 sum = (__u16) ~*check;

	sum += (__u16) ~(old & 0xffff);
	sum += (__u16) ~(old >> 16);
	sum += new & 0xffff;
	sum += new >> 16;
	*check = (__sum16)~csum_fold32(sum);
}

#endif /* SKIFF_BPF_CSUM_H */
