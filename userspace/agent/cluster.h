// The cluster as the agent sees it: nodes (name, IP, PodCIDRs) parsed from
// Kubernetes-shaped objects, and validated into what the datapath needs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ipv4.h"
#include "common/result.h"

namespace skiff::agent {

struct NodeSpec {
    std::string name;
    std::optional<Ipv4> ip;                // status.addresses InternalIP
    std::vector<std::string> pod_cidrs;    // as written (validated later)
    bool operator==(const NodeSpec&) const = default;
};

struct ClusterSpec {
    std::vector<NodeSpec> nodes;
    nlohmann::json services = nlohmann::json::array();        // kind: Service (issue 4)
    nlohmann::json endpoint_slices = nlohmann::json::array(); // kind: EndpointSlice
};

// A kubectl-style List (or NodeList) as `kubectl get nodes,svc,endpointslices -o json` prints it.
Result<ClusterSpec> parse_kube_list(const std::string& text);

struct NodeRoute {
    std::string node;
    Ipv4Prefix pod_cidr;
    Ipv4 node_ip;
    bool local = false;
};

struct Plan {
    std::vector<NodeRoute> routes;      // one per PodCIDR, no overlaps
    std::vector<std::string> problems;  // what was skipped and why
    std::optional<Ipv4Prefix> local_pod_cidr;
};

// Validates nodes against the cluster CIDR: a node without an address or
// with an invalid or out-of-range CIDR is skipped; of overlapping PodCIDRs
// the one already programmed (in `current`) wins, then name order.
Plan plan_nodes(const ClusterSpec& spec, const std::string& local_node, const Ipv4Prefix& cluster_cidr,
                const std::map<Ipv4Prefix, Ipv4>& current);

}  // namespace skiff::agent
