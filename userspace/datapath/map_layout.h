// C++ view of maps/skiff_maps.h: the same header, plus compile-time checks
// that the layouts have no implicit padding. tests/bpf/btf_layout_test.cc
// compares them with the BTF of the compiled BPF objects.
#pragma once

#include <cstddef>

#include "skiff_maps.h"

static_assert(sizeof(skiff_endpoint_key) == 4);
static_assert(sizeof(skiff_endpoint_info) == 24);
static_assert(offsetof(skiff_endpoint_info, ifindex) == 0);
static_assert(offsetof(skiff_endpoint_info, flags) == 4);
static_assert(offsetof(skiff_endpoint_info, pod_mac) == 8);
static_assert(offsetof(skiff_endpoint_info, host_mac) == 16);
static_assert(sizeof(skiff_pod_source) == 8);
static_assert(offsetof(skiff_pod_source, ip) == 4);
static_assert((SKIFF_POD_SOURCES_MAX & (SKIFF_POD_SOURCES_MAX - 1)) == 0);
static_assert(sizeof(skiff_metrics_value) == 16);
static_assert(sizeof(skiff_node_key) == 8);
static_assert(offsetof(skiff_node_key, ip) == 4);
static_assert(sizeof(skiff_node_info) == 8);
static_assert(sizeof(skiff_nexthop_key) == 8);
static_assert(sizeof(skiff_nexthop) == 32);
static_assert(offsetof(skiff_nexthop, ifindex) == 8);
static_assert(offsetof(skiff_nexthop, smac) == 16);
static_assert(offsetof(skiff_nexthop, dmac) == 22);
static_assert(SKIFF_METRICS_MAX == 512);

static_assert(sizeof(skiff_service_key) == 12);
static_assert(offsetof(skiff_service_key, slot) == 8);
static_assert(sizeof(skiff_service_value) == 16);
static_assert(sizeof(skiff_l4_addr) == 8);
static_assert(sizeof(skiff_revnat_key) == 4);
static_assert(sizeof(skiff_ct_key) == 16);
static_assert(sizeof(skiff_ct_value) == 56);
static_assert(offsetof(skiff_ct_value, backend_id) == 32);
static_assert(offsetof(skiff_ct_value, flags) == 50);
static_assert(sizeof(skiff_affinity_key) == 8);
static_assert(sizeof(skiff_affinity_value) == 16);
static_assert(sizeof(skiff_config) == 40);
static_assert(offsetof(skiff_config, tunnel_ifindex) == 28);
static_assert(offsetof(skiff_config, cluster_net) == 20);
static_assert(sizeof(skiff_nat_value) == 40);
static_assert(sizeof(skiff_sock_revnat_key) == 16);
static_assert(sizeof(skiff_sock_revnat_value) == 8);
static_assert(sizeof(skiff_maglev_key) == 8);
static_assert(sizeof(skiff_trace_result) == 32);
static_assert(sizeof(skiff_event) == 40);
static_assert(sizeof(skiff_frag_key) == 12);
static_assert(sizeof(skiff_frag_value) == 8);
