// skiff-agent's JSON configuration file.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ipv4.h"
#include "common/result.h"
#include "ct_gc.h"

namespace skiff::agent {

struct EtcdSourceConfig {
    std::vector<std::string> endpoints;
    std::string prefix = "/skiff";
    int lease_ttl = 10;  // seconds
};

struct KubernetesSourceConfig {
    std::string kubeconfig;  // empty: in-cluster (the pod's service account)
    std::string context;     // empty: the kubeconfig's current-context
};

struct MasqueradeConfig {
    bool enabled = true;
    uint16_t port_min = 61000;  // outside Linux's default ephemeral range 32768-60999
    uint16_t port_max = 65535;
    std::vector<Ipv4Prefix> non_masquerade;  // besides the cluster CIDR and node IPs
};

// How pods reach other nodes' pods: routed as they are (native), or
// encapsulated in VXLAN to every node (vxlan) or only to nodes outside the
// uplink's own subnets (vxlan-cross-subnet).
enum class RoutingMode { Native, Vxlan, VxlanCrossSubnet };
std::string_view routing_mode_name(RoutingMode m);

struct TunnelConfig {
    std::string device = "skiff_vxlan";
    uint16_t port = 8472;  // the Linux VXLAN port flannel uses too
    uint32_t vni = 1;
};

struct AgentConfig {
    // With the Kubernetes source all three may be left out: the name comes
    // from $NODE_NAME, the address from the Node's InternalIP and the uplink
    // is the device holding it (resolved at start, see node_ip_known).
    std::string node_name;
    Ipv4 node_ip;
    std::string uplink;
    bool node_ip_known = true;
    Ipv4Prefix cluster_cidr;
    std::string pin_path = "/sys/fs/bpf/skiff";
    std::string state_dir = "/var/lib/skiff";
    std::string cni_conf_dir = "/etc/cni/net.d";
    std::string cni_log_file;  // the plugin's logFile in the conflist; empty: none
    std::string listen = "127.0.0.1:9964";
    unsigned mtu = 0;  // of pods; 0: the uplink's, less the tunnel's overhead in overlay mode
    RoutingMode routing_mode = RoutingMode::Native;
    TunnelConfig tunnel;
    std::string cni_version = "1.0.0";  // of the conflist written for runtimes
    unsigned resync_seconds = 30;
    std::optional<Ipv4Prefix> pod_cidr;  // etcd source: fixed, else claimed
    int pod_cidr_size = 24;              // etcd source: prefix length to claim
    std::string socket_lb_cgroup;        // cgroup2 dir for host ClusterIP access; empty: off
    MasqueradeConfig masquerade;
    CtTimeouts ct_timeouts;
    unsigned ct_gc_interval_seconds = 10;
    // Nodes + Services + EndpointSlices a snapshot may hold; a larger one is
    // refused whole (the programmed state stays) and reported. Twice
    // Kubernetes' tested scale (10,000 Services, as many slices, 5,000
    // Nodes), under what the datapath can hold (65,535 frontends).
    size_t max_objects = 50000;
    std::optional<std::string> file_source;
    std::optional<EtcdSourceConfig> etcd_source;
    std::optional<KubernetesSourceConfig> kubernetes_source;
};

Result<AgentConfig> parse_agent_config(const std::string& text);
Result<AgentConfig> load_agent_config(const std::string& path);

}  // namespace skiff::agent
