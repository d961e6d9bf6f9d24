// Services and EndpointSlices (Kubernetes form) turned into frontends and
// backends for the datapath.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster.h"

namespace skiff::agent {

struct L4Addr {
    Ipv4 ip;
    uint16_t port = 0;  // host order
    uint8_t proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
    auto operator<=>(const L4Addr&) const = default;
    std::string str() const;
};

struct ServicePort {
    std::string name;     // "<namespace>/<service>:<port name>"
    L4Addr frontend;      // VIP:port/proto
    std::vector<L4Addr> backends;     // ready: get new connections
    std::vector<L4Addr> terminating;  // serving but terminating: keep existing ones
    bool affinity = false;            // sessionAffinity: ClientIP
    bool maglev = false;              // annotation skiff.io/lb-algorithm: maglev
    bool operator==(const ServicePort&) const = default;
    uint32_t affinity_timeout = 10800;
};

struct ServicePlan {
    std::vector<ServicePort> ports;     // sorted by frontend, no duplicates
    std::vector<std::string> problems;  // skipped objects and why
};

inline constexpr size_t kMaxBackendsPerService = 65535;  // u16 slot count
inline constexpr const char* kLbAlgorithmAnnotation = "skiff.io/lb-algorithm";

// What a node needs to know to plan NodePorts.
struct NodeContext {
    std::optional<Ipv4> node_ip;               // NodePort frontends listen here
    std::optional<Ipv4Prefix> local_pod_cidr;  // backends here are "local"
};

// A service with any invalid field is skipped whole (never half-programmed);
// of two services claiming one frontend the first by namespace/name wins.
// With a node IP, NodePort/LoadBalancer services also get a frontend on
// node IP:nodePort (externalTrafficPolicy Local: only local backends).
ServicePlan plan_services(const ClusterSpec& spec, const NodeContext& node = {});

}  // namespace skiff::agent
