/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The benchmark's "veth floor": the least a veth-based eBPF datapath can do
 * to move a pod's packets between nodes, to measure skiff against. Not part
 * of skiff. Two tc programs for a node with one pod:
 *
 *   floor_out  tc ingress of the pod's host veth: IPv4 is routed by a FIB
 *              lookup and redirected out of the device it names (MACs from
 *              the lookup, bpf_redirect_neigh() while the neighbour is
 *              unresolved); anything else goes to the stack (ARP).
 *   floor_in   tc ingress of the uplink: IPv4 for the pod gets its MACs and
 *              goes straight into the pod's namespace (bpf_redirect_peer());
 *              anything else goes to the stack.
 *
 * Nothing else: no TTL, policy, conntrack, NAT, counters or trace. skiff's
 * from_pod/from_uplink do this plus all of those on the same paths.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef AF_INET
#define AF_INET 2
#endif

/* Set by the loader (bench/floor/floor.cc) before load. */
const volatile __u32 pod_ip;	  /* network order */
const volatile __u32 pod_ifindex; /* the pod's host veth */
const volatile __u8 pod_mac[ETH_ALEN];
const volatile __u8 host_mac[ETH_ALEN];

SEC("tc")
int floor_out(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct bpf_fib_lookup fib = {};
	long rc;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	fib.family = AF_INET;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK;
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(fib.ifindex, 0);
}

SEC("tc")
int floor_in(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u8 macs[2 * ETH_ALEN];
	int i;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->daddr != pod_ip)
		return TC_ACT_OK;
	/* Element by element: a memcpy that casts volatile away lets the
	 * compiler fold the knobs to their zero initialisers. */
	for (i = 0; i < ETH_ALEN; i++) {
		macs[i] = pod_mac[i];
		macs[ETH_ALEN + i] = host_mac[i];
	}
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
		return TC_ACT_SHOT;
	return bpf_redirect_peer(pod_ifindex, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
