/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map definitions. Every map is pinned by name under the node's pin
 * directory (set by the loader), so all programs of a node and the control
 * plane share one instance and a reload reuses what is pinned.
 */
#ifndef SKIFF_BPF_MAPS_H
#define SKIFF_BPF_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct skiff_endpoint_key);
	__type(value, struct skiff_endpoint_info);
	__uint(max_entries, SKIFF_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct skiff_pod_source);
	__uint(max_entries, SKIFF_POD_SOURCES_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_pod_srcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct skiff_metrics_value);
	__uint(max_entries, SKIFF_METRICS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct skiff_node_key);
	__type(value, struct skiff_node_info);
	__uint(max_entries, SKIFF_NODES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct skiff_nexthop_key);
	__type(value, struct skiff_nexthop);
	__uint(max_entries, SKIFF_NEXTHOPS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct skiff_service_key);
	__type(value, struct skiff_service_value);
	__uint(max_entries, SKIFF_SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct skiff_l4_addr);
	__uint(max_entries, SKIFF_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct skiff_revnat_key);
	__type(value, struct skiff_l4_addr);
	__uint(max_entries, SKIFF_REVNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_revnat SEC(".maps");

/* LRU: a full table evicts the least recently used entries, not new flows. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct skiff_ct_key);
	__type(value, struct skiff_ct_value);
	__uint(max_entries, SKIFF_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct skiff_affinity_key);
	__type(value, struct skiff_affinity_value);
	__uint(max_entries, SKIFF_AFFINITY_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct skiff_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct skiff_sock_revnat_key);
	__type(value, struct skiff_sock_revnat_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_sock_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct skiff_maglev_key);
	__type(value, __u32);
	__uint(max_entries, SKIFF_MAGLEV_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct skiff_ct_key);
	__type(value, struct skiff_nat_value);
	__uint(max_entries, SKIFF_SNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_snat SEC(".maps");

/* Destinations never masqueraded: the cluster CIDR, configured CIDRs and
 * every node's address. Value unused. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct skiff_node_key);
	__type(value, __u32);
	__uint(max_entries, SKIFF_NOMASQ_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_nomasq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct skiff_trace_result);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_trace SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct skiff_frag_key);
	__type(value, struct skiff_frag_value);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skiff_frags SEC(".maps");

static __always_inline struct skiff_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&skiff_config, &zero);
}

#endif /* SKIFF_BPF_MAPS_H */
