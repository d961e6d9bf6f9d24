/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, constants and small macros every skiff program uses. */
#ifndef SKIFF_BPF_COMMON_H
#define SKIFF_BPF_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "skiff_maps.h"

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#ifndef AF_INET
#define AF_INET 2
#endif

/* Errors map helpers return (negated); no errno.h for BPF. */
#define SKIFF_EEXIST 17

/* Packet pointers, re-read after every helper that may move the data. */
#define SKB_DATA(skb) ((void *)(long)(skb)->data)
#define SKB_DATA_END(skb) ((void *)(long)(skb)->data_end)

#endif /* SKIFF_BPF_COMMON_H */
