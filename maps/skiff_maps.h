/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every skiff BPF map key/value layout, shared by the
 * BPF programs (bpf/) and the C++ control plane (userspace/, cni/, tools/).
 *
 * Rules: fixed-width types only, explicit padding, no bitfields. Addresses
 * and ports are stored in network byte order. C++ adds static_asserts in
 * userspace/bpf/map_layout.h and a test compares these layouts with the BTF
 * of the compiled BPF objects.
 */
#ifndef SKIFF_MAPS_H
#define SKIFF_MAPS_H

#include <linux/types.h>

/* Pinned map names (BPF_OBJ_NAME_LEN is 16, so at most 15 characters). */
#define SKIFF_MAP_ENDPOINTS "skiff_endpoints"
#define SKIFF_MAP_METRICS "skiff_metrics"
#define SKIFF_MAP_NODES "skiff_nodes"

#define SKIFF_ENDPOINTS_MAX 65536
#define SKIFF_NODES_MAX 16384

#define SKIFF_ETH_ALEN 6

/* endpoints: pod IPv4 -> where the pod lives on this node. */
struct skiff_endpoint_key {
	__u32 ip; /* network byte order */
};

enum skiff_endpoint_flags {
	SKIFF_EP_F_LOCAL = 1u << 0, /* pod on this node, reached via its host veth */
};

struct skiff_endpoint_info {
	__u32 ifindex;                  /* host-side veth ifindex */
	__u32 flags;                    /* enum skiff_endpoint_flags */
	__u8 pod_mac[SKIFF_ETH_ALEN];   /* MAC of the pod's interface */
	__u8 pad0[2];
	__u8 host_mac[SKIFF_ETH_ALEN];  /* MAC of the host-side veth */
	__u8 pad1[2];
};

/* nodes: LPM trie, PodCIDR -> the node that owns it. */
struct skiff_node_key {
	__u32 prefixlen; /* LPM trie header: bits of ip that count */
	__u32 ip;        /* network byte order */
};

enum skiff_node_flags {
	SKIFF_NODE_F_LOCAL = 1u << 0, /* this node's own PodCIDR */
};

struct skiff_node_info {
	__u32 node_ip; /* network byte order: next hop on the underlay */
	__u32 flags;   /* enum skiff_node_flags */
};

/*
 * Reasons: why a packet got its verdict. Values below SKIFF_DROP_BASE are
 * forwarding verdicts, values from SKIFF_DROP_BASE up are drops. BPF helpers
 * return 0 or a negative drop reason (-SKIFF_DROP_...).
 */
enum skiff_reason {
	SKIFF_REASON_UNSPEC = 0,
	SKIFF_FWD_LOCAL_POD = 1,   /* redirected into a pod on this node */
	SKIFF_FWD_STACK = 2,       /* handed to the kernel stack */
	SKIFF_FWD_NON_IP = 3,      /* not IPv4: handed to the kernel stack */
	SKIFF_FWD_TTL_EXPIRED = 4, /* TTL would hit 0: the stack sends ICMP */
	SKIFF_FWD_REMOTE_NODE = 5, /* redirected out of the uplink to another node */
	SKIFF_FWD_FIB_MISS = 6,    /* remote PodCIDR but no usable route: stack */

	SKIFF_DROP_BASE = 128,
	SKIFF_DROP_INVALID_SOURCE = 128, /* source IP is not the pod's own */
	SKIFF_DROP_MALFORMED = 129,      /* truncated or inconsistent headers */
	SKIFF_DROP_REDIRECT_FAILED = 130,
	SKIFF_DROP_CSUM = 131,           /* checksum update failed */

	SKIFF_REASON_MAX = 256,
};

/* Direction of a counted packet, relative to the endpoint or node. */
enum skiff_dir {
	SKIFF_DIR_EGRESS = 0,  /* leaving a pod (host-veth ingress hook) */
	SKIFF_DIR_INGRESS = 1, /* arriving at the node (uplink ingress hook) */
	SKIFF_DIR_MAX = 2,
};

/* metrics: per-CPU array indexed by SKIFF_METRICS_INDEX(reason, dir). */
#define SKIFF_METRICS_INDEX(reason, dir) ((__u32)(reason) * SKIFF_DIR_MAX + (__u32)(dir))
#define SKIFF_METRICS_MAX ((__u32)SKIFF_REASON_MAX * (__u32)SKIFF_DIR_MAX)

struct skiff_metrics_value {
	__u64 packets;
	__u64 bytes;
};

#endif /* SKIFF_MAPS_H */
