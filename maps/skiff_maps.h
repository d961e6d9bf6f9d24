/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every skiff BPF map key/value layout, shared by the
 * BPF programs (bpf/) and the C++ control plane (userspace/, cni/, tools/).
 *
 * Rules: fixed-width types only, explicit padding, no bitfields. Addresses
 * and ports are stored in network byte order. C++ adds static_asserts in
 * userspace/datapath/map_layout.h and a test compares these layouts with the BTF
 * of the compiled BPF objects.
 */
#ifndef SKIFF_MAPS_H
#define SKIFF_MAPS_H

#include <linux/types.h>

/* Pinned map names (BPF_OBJ_NAME_LEN is 16, so at most 15 characters). */
#define SKIFF_MAP_ENDPOINTS "skiff_endpoints"
#define SKIFF_MAP_POD_SOURCES "skiff_pod_srcs"
#define SKIFF_MAP_METRICS "skiff_metrics"
#define SKIFF_MAP_NODES "skiff_nodes"
#define SKIFF_MAP_SERVICES "skiff_services"
#define SKIFF_MAP_BACKENDS "skiff_backends"
#define SKIFF_MAP_REVNAT "skiff_revnat"
#define SKIFF_MAP_CT "skiff_ct"
#define SKIFF_MAP_AFFINITY "skiff_affinity"
#define SKIFF_MAP_CONFIG "skiff_config"
#define SKIFF_MAP_SOCK_REVNAT "skiff_sock_rnat"
#define SKIFF_MAP_MAGLEV "skiff_maglev"
#define SKIFF_MAP_SNAT "skiff_snat"
#define SKIFF_MAP_NOMASQ "skiff_nomasq"
#define SKIFF_MAP_EVENTS "skiff_events"
#define SKIFF_MAP_TRACE "skiff_trace"
#define SKIFF_MAP_FRAGS "skiff_frags"
#define SKIFF_MAP_NEXTHOPS "skiff_nexthops"

#define SKIFF_ENDPOINTS_MAX 65536
#define SKIFF_POD_SOURCES_MAX 4096 /* slots, a power of two */
#define SKIFF_NODES_MAX 16384
#define SKIFF_SERVICES_MAX 262144 /* frontend + backend slots */
#define SKIFF_BACKENDS_MAX 131072
#define SKIFF_REVNAT_MAX 65536
#define SKIFF_CT_MAX 262144
#define SKIFF_AFFINITY_MAX 65536
#define SKIFF_MAGLEV_SIZE 1021 /* entries per frontend: a prime */
#define SKIFF_MAGLEV_MAX (SKIFF_MAGLEV_SIZE * 512)
#define SKIFF_SNAT_MAX 131072
#define SKIFF_NOMASQ_MAX 4096
#define SKIFF_NEXTHOPS_MAX 16384
#define SKIFF_NEXTHOP_TTL_NS 50000000ull /* 50 ms */

#define SKIFF_ETH_ALEN 6

/* endpoints: pod IPv4 -> where the pod lives on this node. */
struct skiff_endpoint_key {
	__u32 ip; /* network byte order */
};

enum skiff_endpoint_flags {
	SKIFF_EP_F_LOCAL = 1u << 0, /* pod on this node, reached via its host veth */
};

struct skiff_endpoint_info {
	__u32 ifindex;		      /* host-side veth ifindex */
	__u32 flags;		      /* enum skiff_endpoint_flags */
	__u8 pod_mac[SKIFF_ETH_ALEN]; /* MAC of the pod's interface */
	__u8 pad0[2];
	__u8 host_mac[SKIFF_ETH_ALEN]; /* MAC of the host-side veth */
	__u8 pad1[2];
};

/*
 * pod_srcs: array, slot (host veth ifindex & (SKIFF_POD_SOURCES_MAX - 1))
 * -> the address the pod behind that veth sends from. A copy of what the
 * endpoints map says, written and cleared with it, so that from_pod's
 * source check is an array load instead of a hash lookup. A slot is only
 * believed for its own ifindex and address: anything else (an empty slot,
 * one another pod's veth holds, a pod added before the map existed) is
 * checked in the endpoints map.
 */
struct skiff_pod_source {
	__u32 ifindex; /* host-side veth; 0: empty */
	__u32 ip;      /* network byte order */
};

/* nodes: LPM trie, PodCIDR -> the node that owns it. */
struct skiff_node_key {
	__u32 prefixlen; /* LPM trie header: bits of ip that count */
	__u32 ip;	 /* network byte order */
};

enum skiff_node_flags {
	SKIFF_NODE_F_LOCAL = 1u << 0, /* this node's own PodCIDR */
	SKIFF_NODE_F_ENCAP = 1u << 1, /* reached through the tunnel (VXLAN), not routed natively */
	SKIFF_NODE_F_HOST = 1u << 2,  /* the node's own address (/32), not a PodCIDR: with
				       * ENCAP, pods reach it through the tunnel too */
};

struct skiff_node_info {
	__u32 node_ip; /* network byte order: next hop on the underlay */
	__u32 flags;   /* enum skiff_node_flags */
};

/*
 * nexthops: LRU hash, {pod source, node IP} -> the FIB's answer for
 * sending a pod's packet to that node by native routing, so that a flow's
 * packets do not each pay a FIB lookup. Written by the BPF programs only,
 * each answer replacing the entry whole; believed until expires (a
 * bpf_ktime_get_coarse_ns() time SKIFF_NEXTHOP_TTL_NS after the lookup)
 * and for packets of at most mtu bytes (GSO packets: whatever their
 * length, as the FIB checks them), else the FIB is asked again. A route
 * or neighbour change is seen within that time; an unresolved neighbour
 * is never cached.
 */
struct skiff_nexthop_key {
	__u32 saddr;   /* network byte order: the pod's address */
	__u32 node_ip; /* network byte order */
};

struct skiff_nexthop {
	__u64 expires;
	__u32 ifindex; /* egress device */
	__u32 mtu;     /* path MTU the FIB reported; 0: none (GSO packets only) */
	__u8 smac[SKIFF_ETH_ALEN];
	__u8 dmac[SKIFF_ETH_ALEN];
	__u8 pad[4];
};

/*
 * services: {VIP, port, proto, slot} -> slot 0: the frontend (backend
 * count, rev-NAT id, flags); slot n (1..count): the n-th backend's id.
 */
struct skiff_service_key {
	__u32 vip;  /* network byte order */
	__u16 port; /* network byte order */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad0;
	__u16 slot;
	__u16 pad1;
};

enum skiff_service_flags {
	SKIFF_SVC_F_AFFINITY = 1u << 0, /* sessionAffinity: ClientIP */
	SKIFF_SVC_F_MAGLEV = 1u << 1,	/* backend by Maglev table, not at random */
};

struct skiff_service_value {
	__u32 backend_id;	/* slot > 0 */
	__u16 count;		/* slot 0: backend slots 1..count */
	__u16 revnat_id;	/* slot 0 */
	__u32 flags;		/* slot 0: enum skiff_service_flags */
	__u32 affinity_timeout; /* slot 0: seconds */
};

/* maglev: {frontend's rev-NAT id, flow hash % SKIFF_MAGLEV_SIZE} -> backend id */
struct skiff_maglev_key {
	__u16 revnat_id;
	__u16 pad;
	__u32 index;
};

/*
 * An L4 address, the value of two maps. backends: backend id -> where the
 * backend listens. revnat: rev-NAT id -> the frontend its replies are
 * translated back to.
 */
struct skiff_l4_addr {
	__u32 ip;   /* network byte order */
	__u16 port; /* network byte order */
	__u8 proto;
	__u8 pad;
};

struct skiff_revnat_key {
	__u16 id;
	__u16 pad;
};

/*
 * ct: connection tracking for translated flows. A new connection to a
 * service creates two entries: FORWARD keyed by the client's tuple
 * {client, VIP, cport, vport} holding the chosen backend, and REPLY keyed
 * by the backend's reply tuple {backend, client, bport, cport} holding the
 * frontend to translate replies back to.
 */
enum skiff_ct_dir {
	SKIFF_CT_FORWARD = 0,
	SKIFF_CT_REPLY = 1,
};

struct skiff_ct_key {
	__u32 saddr; /* network byte order */
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir; /* enum skiff_ct_dir */
	__u16 pad;
};

enum skiff_ct_flags {
	SKIFF_CT_F_SYN = 1u << 0,     /* a SYN was seen */
	SKIFF_CT_F_CLOSING = 1u << 1, /* FIN or RST seen */
	SKIFF_CT_F_SNAT = 1u << 2,    /* the source is translated too (hairpin, NodePort) */
	SKIFF_CT_F_REPLIED = 1u << 3, /* the backend answered: set on both entries */
};

struct skiff_ct_value {
	__u64 created_ns; /* bpf_ktime_get_ns() */
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
	__u32 backend_id;
	__u32 nat_addr;	 /* FORWARD: backend IP; REPLY: frontend IP (network order) */
	__u32 snat_addr; /* with SKIFF_CT_F_SNAT: FORWARD: new source; REPLY: the client */
	__u16 nat_port;	 /* FORWARD: backend port; REPLY: frontend port */
	__u16 snat_port; /* with SKIFF_CT_F_SNAT, like snat_addr */
	__u16 revnat_id;
	__u8 flags; /* enum skiff_ct_flags */
	__u8 pad[5];
};

/* Source address of hairpinned connections (a pod reaching itself through
 * a service): the pod would drop a packet from its own address. */
#define SKIFF_HAIRPIN_ADDR 0xa9fe2a01 /* 169.254.42.1, host order */

/* affinity: sessionAffinity ClientIP, {client, service} -> backend. */
struct skiff_affinity_key {
	__u32 client; /* network byte order */
	__u16 revnat_id;
	__u16 pad;
};

struct skiff_affinity_value {
	__u64 last_used_ns;
	__u32 backend_id;
	__u16 slot; /* honoured only while this slot still names backend_id */
	__u16 pad;
};

/* config: a one-entry array the agent fills in for its node. */
enum skiff_config_flags {
	SKIFF_CFG_F_MASQUERADE = 1u << 0, /* SNAT pod traffic leaving the cluster */
};

struct skiff_config {
	__u32 node_ip;	    /* network byte order; 0 until the agent set it */
	__u32 flags;	    /* enum skiff_config_flags */
	__u64 netns_cookie; /* the node's network namespace (socket LB scope) */
	__u16 nat_port_min; /* masquerade port range (host order) */
	__u16 nat_port_max;
	/* The cluster's pod range (network byte order): addresses in it are
	 * looked up as pods before as service frontends. A mask of 0 (not set)
	 * makes every address a candidate: slower, never wrong. */
	__u32 cluster_net;
	__u32 cluster_mask;
	/* Overlay: the node's flow-based VXLAN device (0: none) and the VNI
	 * its packets carry. Nodes flagged SKIFF_NODE_F_ENCAP are reached
	 * through it. */
	__u32 tunnel_ifindex;
	__u32 tunnel_vni;
	/* The tunnel's UDP port on this node (network byte order, 0: none):
	 * encapsulated packets for it go straight to the kernel's VXLAN
	 * socket, past the service and masquerade lookups. */
	__u16 tunnel_port;
	__u16 pad;
};

/* The MAC of every node's tunnel device: the overlay is point to point, so
 * one address serves all, and inner frames are addressed to it
 * (02:73:6b:69:66:66, locally administered, "skiff"). Inner frames come
 * from SKIFF_TUNNEL_SRC_MAC: the VXLAN device drops a frame sent from its
 * own address as a loop. */
#define SKIFF_TUNNEL_MAC_BYTES 0x02, 0x73, 0x6b, 0x69, 0x66, 0x66
#define SKIFF_TUNNEL_SRC_MAC_BYTES 0x02, 0x73, 0x6b, 0x69, 0x66, 0x01
#define SKIFF_TUNNEL_MAC               \
	{                              \
		SKIFF_TUNNEL_MAC_BYTES \
	}
#define SKIFF_TUNNEL_SRC_MAC               \
	{                                  \
		SKIFF_TUNNEL_SRC_MAC_BYTES \
	}
/* Bytes VXLAN over IPv4 adds: outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14. */
#define SKIFF_VXLAN_OVERHEAD 50

/*
 * snat: masquerade translations, keyed like conntrack (struct skiff_ct_key):
 * EGRESS {pod, dst, pod port, dst port} -> {node IP, NAT port};
 * INGRESS {dst, node IP, dst port, NAT port} -> {pod, pod port}.
 * For ICMP echo the identifier is the "port": the request's source port,
 * the reply's destination port. A plain hash: a busy table never evicts a
 * live flow; the agent expires idle ones.
 * The node's own flows to the same destinations are entered too (pod =
 * node, usually with its port kept), so a pod flow never takes a tuple the
 * node uses and the node's flow moves when a pod flow already holds it.
 */
enum skiff_snat_dir {
	SKIFF_SNAT_EGRESS = 0,
	SKIFF_SNAT_INGRESS = 1,
};

struct skiff_nat_value {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
	__u32 addr; /* the address written in (network order) */
	__u16 port; /* the port written in (network order) */
	__u8 flags; /* enum skiff_ct_flags: CLOSING */
	__u8 pad;
};

/* sock_revnat: for UDP sockets translated at sendmsg/connect time, what a
 * datagram from the backend must look like it came from. */
struct skiff_sock_revnat_key {
	__u64 cookie; /* bpf_get_socket_cookie() */
	__u32 addr;   /* backend, network byte order */
	__u16 port;
	__u16 pad;
};

struct skiff_sock_revnat_value {
	__u32 vip;
	__u16 port;
	__u16 pad;
};

/* frags: the translation of a fragmented datagram, for its later fragments
 * (which carry no ports): {as they arrive: src, dst, IP id, proto} -> the
 * address to write (source going out, destination coming back). */
struct skiff_frag_key {
	__u32 saddr;
	__u32 daddr;
	__u16 id;
	__u8 proto;
	__u8 pad;
};

struct skiff_frag_value {
	__u32 addr;
	__u32 pad;
};

/*
 * Trace mode (skiffctl trace): a packet run through BPF_PROG_TEST_RUN with
 * this mark is judged like any other, but changes no state (no conntrack,
 * NAT, affinity or counters) and leaves its verdict in skiff_trace.
 */
#define SKIFF_TRACE_MARK 0x5c1ff7ac

/*
 * A packet skiff redirected to a device (by FIB, or back out of the one it
 * came in on) carries this mark until the uplink's egress program, which
 * lets it pass and clears the mark: that program looks only at the node's
 * own traffic.
 */
#define SKIFF_FORWARDED_MARK 0x5c1ff0d0
/* A packet skiff encapsulated (tunnel key set) carries this mark into the
 * tunnel device's egress program, which clears it; anything else routed
 * into the tunnel (the node's own traffic, a packet routed by FIB) gets
 * its key there. */
#define SKIFF_TUNNEL_MARK 0x5c1f7e11

enum skiff_trace_flags {
	SKIFF_TRACE_F_REDIRECT_PEER = 1u << 0, /* into the peer of redirect_ifindex */
	SKIFF_TRACE_F_BACKEND = 1u << 1,       /* backend_id is set */
	SKIFF_TRACE_F_NEW = 1u << 2,	       /* would create conntrack/NAT state */
	SKIFF_TRACE_F_TUNNEL = 1u << 3,	       /* tunnel_remote and tunnel_vni are set */
};

struct skiff_trace_result {
	__u32 reason;		/* enum skiff_reason of the verdict */
	__s32 action;		/* TC action returned */
	__u32 redirect_ifindex; /* 0: none */
	__u32 backend_id;
	__u32 flags;	     /* enum skiff_trace_flags */
	__u32 seq;	     /* bumped on every traced run */
	__u32 tunnel_remote; /* encapsulated toward this node (network byte order) */
	__u32 tunnel_vni;
};

/* events: ring buffer records for skiffctl monitor (drops, traces). */
enum skiff_event_type {
	SKIFF_EVENT_DROP = 1,
	SKIFF_EVENT_TRACE = 2,
};

struct skiff_event {
	__u64 ts_ns;   /* bpf_ktime_get_ns() */
	__u8 type;     /* enum skiff_event_type */
	__u8 dir;      /* enum skiff_dir */
	__u16 reason;  /* enum skiff_reason */
	__u32 ifindex; /* the device the program runs on */
	__u32 saddr;   /* network byte order; 0 if not IPv4 */
	__u32 daddr;
	__u16 sport; /* network byte order */
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
	__u32 len; /* packet length */
	__u32 pad1;
};

/*
 * Reasons: why a packet got its verdict. Values below SKIFF_DROP_BASE are
 * forwarding verdicts, values from SKIFF_DROP_BASE up are drops. BPF helpers
 * return 0 or a negative drop reason (-SKIFF_DROP_...).
 */
enum skiff_reason {
	SKIFF_REASON_UNSPEC = 0,
	SKIFF_FWD_LOCAL_POD = 1,	/* redirected into a pod on this node */
	SKIFF_FWD_STACK = 2,		/* handed to the kernel stack */
	SKIFF_FWD_NON_IP = 3,		/* not IPv4: handed to the kernel stack */
	SKIFF_FWD_TTL_EXPIRED = 4,	/* TTL would hit 0: the stack sends ICMP */
	SKIFF_FWD_REMOTE_NODE = 5,	/* redirected out of the uplink to another node */
	SKIFF_FWD_FIB_MISS = 6,		/* remote PodCIDR but no usable route: stack */
	SKIFF_SVC_NEW = 7,		/* new connection to a service: backend chosen */
	SKIFF_SVC_ESTABLISHED = 8,	/* packet of a tracked service connection */
	SKIFF_SVC_REPLY = 9,		/* reply translated back to the service */
	SKIFF_FWD_FIB = 10,		/* translated reply routed out by FIB lookup */
	SKIFF_SNAT_NEW = 11,		/* new masqueraded flow: a port was taken */
	SKIFF_SNAT_EGRESS_XLATE = 12,	/* masqueraded on the way out */
	SKIFF_SNAT_INGRESS_XLATE = 13,	/* reply translated back to the pod */
	SKIFF_SNAT_ICMP_ERROR = 14,	/* ICMP error about a masqueraded flow, translated */
	SKIFF_SNAT_NODE_NEW = 15,	/* the node's own new flow, entered with its port */
	SKIFF_SNAT_NODE_MOVED = 16,	/* the node's new flow moved off a port a pod flow holds */
	SKIFF_SNAT_NODE = 17,		/* a packet of a node flow in the masquerade table */
	SKIFF_SNAT_NODE_UNTRACKED = 18, /* the node's new flow found the table full: sent as is */
	SKIFF_FWD_TUNNEL = 19,		/* encapsulated toward another node (VXLAN) */
	SKIFF_FWD_FROM_TUNNEL = 20,	/* encapsulated for this node: on to the tunnel device */
	SKIFF_FWD_FRAG_NEEDED = 21,	/* too big for the tunnel's path: ICMP sent back */

	/*
	 * Not verdicts: conntrack entries the datapath inserted and removed
	 * (counted under SKIFF_DIR_EGRESS, one "packet" per entry). The map
	 * is LRU and evicts silently when full; what it holds against these
	 * counts, and the agent's own deletions, tells how many it evicted.
	 */
	SKIFF_CT_ENTRY_INSERTED = 64,
	SKIFF_CT_ENTRY_REMOVED = 65,

	SKIFF_DROP_BASE = 128,
	SKIFF_DROP_INVALID_SOURCE = 128, /* source IP is not the pod's own */
	SKIFF_DROP_MALFORMED = 129,	 /* truncated or inconsistent headers */
	SKIFF_DROP_REDIRECT_FAILED = 130,
	SKIFF_DROP_CSUM = 131,	       /* checksum update failed */
	SKIFF_DROP_NO_BACKEND = 132,   /* service without ready backends */
	SKIFF_DROP_CT_FULL = 133,      /* conntrack insert failed */
	SKIFF_DROP_FRAGMENT = 134,     /* non-first fragment to a service */
	SKIFF_DROP_NAT_NO_PORT = 135,  /* masquerade port range exhausted */
	SKIFF_DROP_TUNNEL_SPOOF = 136, /* inner source not of the outer source's node */
	SKIFF_DROP_NO_TUNNEL = 137,    /* node to be reached by tunnel, but no tunnel device */

	SKIFF_REASON_MAX = 256,
};

/* Direction of a counted packet, relative to the endpoint or node. */
enum skiff_dir {
	SKIFF_DIR_EGRESS = 0,  /* leaving a pod (host-veth ingress hook) or the node (uplink egress) */
	SKIFF_DIR_INGRESS = 1, /* arriving at the node (uplink ingress hook) */
	SKIFF_DIR_MAX = 2,
};

/* metrics: per-CPU array indexed by SKIFF_METRICS_INDEX(reason, dir). */
#define SKIFF_METRICS_INDEX(reason, dir) ((__u32)(reason)*SKIFF_DIR_MAX + (__u32)(dir))
#define SKIFF_METRICS_MAX ((__u32)SKIFF_REASON_MAX * (__u32)SKIFF_DIR_MAX)

struct skiff_metrics_value {
	__u64 packets;
	__u64 bytes;
};

#endif /* SKIFF_MAPS_H */
