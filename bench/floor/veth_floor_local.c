/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The benchmark's same-node "veth floor": the least a veth-based eBPF
 * datapath does to move a packet between two pods of one node. Not part of
 * skiff. One tc program for the tc ingress of every pod's host veth:
 *
 *   floor_local  IPv4 to a pod in floor_eps (one hash lookup by destination
 *                address) gets that pod's MACs and goes straight into its
 *                namespace (bpf_redirect_peer()); anything else goes to the
 *                stack.
 *
 * Nothing else: no TTL, source check, conntrack, services, counters or
 * trace. skiff's from_pod does this plus all of those on the same path.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct floor_ep {
	__u32 ifindex; /* the pod's host veth */
	__u8 pod_mac[ETH_ALEN];
	__u8 host_mac[ETH_ALEN];
};

/* Pod address (network order) -> where it is. Filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct floor_ep);
	__uint(max_entries, 1024);
} floor_eps SEC(".maps");

SEC("tc")
int floor_local(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct floor_ep *ep;
	__u32 daddr;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	daddr = ip->daddr;
	ep = bpf_map_lookup_elem(&floor_eps, &daddr);
	if (!ep)
		return TC_ACT_OK;
	__builtin_memcpy(eth->h_dest, ep->pod_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, ep->host_mac, ETH_ALEN);
	return bpf_redirect_peer(ep->ifindex, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
